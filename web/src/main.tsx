import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { api, describeInput, type Project } from "./api";
import { getToken, onAuthChange, signOut } from "./auth";
import { ErrorBox, Spinner, useLoad } from "./components/common";
import { AnnotatePage } from "./pages/annotate";
import { DatasetPage } from "./pages/dataset";
import { EvaluationPage } from "./pages/evaluation";
import { JobPage } from "./pages/job";
import { ModelsPage } from "./pages/models";
import { ProjectsPage } from "./pages/projects";
import { SignIn } from "./pages/signin";
import { TrainPage } from "./pages/train";
import { TryPage } from "./pages/try";
import { Link, parseRoute, projectUrl, usePath, type Route } from "./router";
import "./styles.css";

const TABS: { page: Route["page"]; sub: string; text: string }[] = [
  { page: "dataset", sub: "dataset", text: "Dataset" },
  { page: "train", sub: "train", text: "Train" },
  { page: "models", sub: "models", text: "Models" },
  // The current version's evaluation; another version's is reached from the Models page.
  { page: "evaluation", sub: "models/current", text: "Evaluation" },
  { page: "try", sub: "try", text: "Try it" },
];

function tabOf(page: Route["page"]): Route["page"] {
  if (page === "job") return "train";
  if (page === "annotate") return "dataset";
  return page;
}

function ProjectShell({ route }: { route: Route }) {
  const ref = route.project ?? "";
  const { data: project, error, reload } = useLoad<Project>(() => api.getProject(ref), [ref]);
  useEffect(() => {
    document.title = `${ref} · mobiletrain`;
  }, [ref]);
  if (error) return <ErrorBox message={error} />;
  if (!project) return <Spinner />;
  const active = tabOf(route.page);
  const spec = project.input_spec;
  return (
    <>
      <div class="project-head">
        <h1>{project.name}</h1>
        <p class="muted">
          {project.task} · {describeInput(project.task, spec)} ·{" "}
          {project.labels.length} label{project.labels.length === 1 ? "" : "s"}
          {project.labels_fixed ? " (fixed)" : " (open)"}
        </p>
      </div>
      <nav class="tabs" aria-label="Project sections">
        {TABS.map((t) => (
          <Link
            key={t.sub}
            href={projectUrl(project.name, t.sub)}
            aria-current={active === t.page ? "page" : undefined}
          >
            {t.text}
          </Link>
        ))}
      </nav>
      {route.page === "dataset" && <DatasetPage project={project} onChange={reload} />}
      {route.page === "annotate" && (
        <AnnotatePage key={project.id} project={project} sampleId={route.sampleId ?? ""} onChange={reload} />
      )}
      {route.page === "train" && <TrainPage project={project} />}
      {route.page === "job" && <JobPage project={project} jobId={route.jobId ?? ""} />}
      {route.page === "models" && <ModelsPage project={project} />}
      {route.page === "evaluation" && (
        <EvaluationPage project={project} version={route.version ?? "current"} />
      )}
      {route.page === "try" && <TryPage project={project} />}
    </>
  );
}

function App() {
  const [token, setTokenState] = useState(getToken());
  const [reason, setReason] = useState("");
  const path = usePath();
  useEffect(
    () =>
      onAuthChange((t, why) => {
        setTokenState(t);
        setReason(why);
      }),
    [],
  );
  if (!token) return <SignIn reason={reason} />;
  const route = parseRoute(path);
  if (route.page === "projects") document.title = "Projects · mobiletrain";
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <Link href="/" class="brand">
          <span class="logo" aria-hidden="true" />
          mobiletrain
        </Link>
        <nav aria-label="Main">
          <Link href="/" aria-current={route.page === "projects" ? "page" : undefined}>
            Projects
          </Link>
        </nav>
        <button type="button" class="link" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {route.page === "projects" && <ProjectsPage />}
        {route.page === "notfound" && (
          <>
            <h1>Page not found</h1>
            <p>
              <Link href="/">Back to the projects</Link>
            </p>
          </>
        )}
        {route.project !== undefined && <ProjectShell route={route} />}
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
