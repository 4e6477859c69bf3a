// A small history-API router: the server answers every non-API path with index.html.

import type { ComponentChildren, JSX } from "preact";
import { useEffect, useState } from "preact/hooks";

const EVENT = "mobiletrain:navigate";

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  window.dispatchEvent(new Event(EVENT));
  window.scrollTo(0, 0);
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    window.addEventListener("popstate", update);
    window.addEventListener(EVENT, update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener(EVENT, update);
    };
  }, []);
  return path;
}

type LinkProps = JSX.HTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren };

/** An <a> that navigates in-page (middle click and modifier keys still open a new tab). */
export function Link({ href, children, ...rest }: LinkProps) {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) {
      return;
    }
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}

export interface Route {
  page: "projects" | "dataset" | "annotate" | "train" | "job" | "models" | "evaluation" | "try" | "notfound";
  project?: string;
  sampleId?: string;
  jobId?: string;
  version?: string;
}

export function parseRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "projects" };
  if (parts[0] !== "projects" || parts.length < 2) return { page: "notfound" };
  const project = parts[1];
  const rest = parts.slice(2);
  if (rest.length === 0 || (rest.length === 1 && rest[0] === "dataset")) {
    return { page: "dataset", project };
  }
  if (rest[0] === "annotate" && rest.length <= 2) return { page: "annotate", project, sampleId: rest[1] ?? "" };
  if (rest.length === 1 && rest[0] === "train") return { page: "train", project };
  if (rest.length === 2 && rest[0] === "jobs") return { page: "job", project, jobId: rest[1] };
  if (rest.length === 1 && rest[0] === "models") return { page: "models", project };
  if (rest.length === 2 && rest[0] === "models") {
    return { page: "evaluation", project, version: rest[1] };
  }
  if (rest.length === 1 && rest[0] === "try") return { page: "try", project };
  return { page: "notfound" };
}

export const projectUrl = (project: string, sub = "dataset"): string =>
  `/projects/${encodeURIComponent(project)}/${sub}`;
