import { api, type Metrics, type ModelVersion, type Project } from "../api";
import { Card, ErrorBox, Spinner, formatTime, useLoad } from "../components/common";
import { EvaluationView } from "../components/evaluation";
import { Link, projectUrl } from "../router";

export function EvaluationPage({ project, version }: { project: Project; version: string }) {
  const loaded = useLoad<[ModelVersion, Metrics]>(
    () =>
      Promise.all([
        api.getModel(project.id, version),
        api.modelMetrics(project.id, version),
      ]),
    [project.id, version],
  );
  if (loaded.error && version === "current") {
    // No version is current yet (nothing trained, or nothing passed the release gate).
    return (
      <Card title="Evaluation">
        <p data-testid="no-current-model">
          No model version is current yet, so there is nothing to evaluate.{" "}
          <Link href={projectUrl(project.name, "train")}>Train a model</Link>, or open a version’s
          evaluation from <Link href={projectUrl(project.name, "models")}>the models</Link>.
        </p>
        <p class="hint">{loaded.error}</p>
      </Card>
    );
  }
  if (loaded.error) return <ErrorBox message={loaded.error} />;
  if (!loaded.data) return <Spinner />;
  const [model, metrics] = loaded.data;
  return (
    <Card
      title={`Version ${model.version} evaluation`}
      actions={<Link href={projectUrl(project.name, "models")}>All versions</Link>}
    >
      <p class="muted">
        Trained {formatTime(model.created_at)} by{" "}
        <Link href={projectUrl(project.name, `jobs/${model.job_id}`)}>job {model.job_id.slice(0, 8)}</Link>
        {metrics.num_train !== undefined ? ` on ${metrics.num_train} images` : ""}
        {metrics.epochs_run !== undefined ? `, ${metrics.epochs_run} epochs` : ""}
        {model.current ? " · current version" : ""}
      </p>
      <EvaluationView project={project} metrics={metrics} />
    </Card>
  );
}
