"""Projects: create, list, get and delete."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from mobiletrain.api.rest.deps import PageSize, PageToken, ProjectRef, ProjectsDep
from mobiletrain.api.rest.errors import error_docs
from mobiletrain.api.rest.schemas import (
    ProjectCreate,
    ProjectListPublic,
    ProjectPublic,
    input_spec_from_model,
    project_to_public,
)

router = APIRouter(tags=["projects"], responses=error_docs(400, 500))


@router.post(
    "/projects",
    status_code=status.HTTP_201_CREATED,
    responses=error_docs(409),
    summary="Create a project",
)
def create_project(body: ProjectCreate, projects: ProjectsDep) -> ProjectPublic:
    """Create a project.

    Empty `labels` makes an open label set. Fails with PROJECT_EXISTS (409, code 11),
    INVALID_NAME (12), INVALID_INPUT_SPEC (13), UNSUPPORTED_TASK (14) or INVALID_LABEL (21).
    """
    project = projects.create(
        body.name,
        task=body.task,
        labels=body.labels,
        input_spec=input_spec_from_model(body.input_spec),
    )
    return project_to_public(project)


@router.get("/projects", summary="List projects")
def list_projects(
    projects: ProjectsDep, page_size: PageSize = 0, page_token: PageToken = ""
) -> ProjectListPublic:
    """List projects in creation order, a page at a time (INVALID_PAGE, code 30, on a bad
    token or size)."""
    page = projects.list(page_size, page_token)
    return ProjectListPublic(
        projects=[project_to_public(p) for p in page.items],
        next_page_token=page.next_page_token,
    )


@router.get("/projects/{project}", responses=error_docs(404), summary="Get a project")
def get_project(project: ProjectRef, projects: ProjectsDep) -> ProjectPublic:
    """Get a project by id or name (PROJECT_NOT_FOUND, 404, code 10)."""
    return project_to_public(projects.get(project))


class ProjectDeletedPublic(BaseModel):
    """What ``DELETE /v1/projects/{project}`` deleted."""

    project: ProjectPublic = Field(description="The deleted project, as it was")
    samples_deleted: int = Field(description="Number of samples deleted with it")


@router.delete("/projects/{project}", responses=error_docs(404, 409), summary="Delete a project")
def delete_project(project: ProjectRef, projects: ProjectsDep) -> ProjectDeletedPublic:
    """Delete a project with its samples, jobs, model versions, release history, device tokens
    and federated sessions (administrators only).

    The bytes are removed from the blob store by the next compaction pass (or `mobiletrain
    compact`). Fails with PROJECT_NOT_FOUND (404, code 10), or PROJECT_BUSY (409, code 15)
    while a job of the project is queued or running.
    """
    deleted, samples = projects.delete(project)
    return ProjectDeletedPublic(project=project_to_public(deleted), samples_deleted=samples)
