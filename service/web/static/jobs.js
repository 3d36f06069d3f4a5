// Operators: jobs with live progress (polled while any is active), cancel, and each job's
// metrics, error, and outputs (a constitution job's chains, a training job's artifacts).

import { allPages, announce, api, el, header, idParam, requireKey } from "./api.js";

requireKey();
const projectId = idParam("project");
const ACTIVE = new Set(["queued", "running"]);
const open = new Set(location.hash.startsWith("#job-") ? [location.hash.slice(5)] : []);
let timer = null;

function json(value) {
  return el("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

async function outputs(job) {
  if (job.kind === "constitution") {
    const page = await api("GET", `/v1/jobs/${job.id}/revisions?limit=20`);
    return el(
      "div",
      {},
      el("h3", {}, `Chains (first ${page.data.length})`),
      page.data.length
        ? el(
            "ol",
            {},
            page.data.map((c) =>
              el(
                "li",
                {},
                el("strong", {}, c.status),
                ` · response ${c.response_id} · ${c.steps.map((s) => `${s.principle}: ${s.revision_outcome ?? s.critique_outcome}`).join(", ")}`,
              ),
            ),
          )
        : el("p", { class: "muted" }, "None stored yet."),
    );
  }
  if (job.kind === "train" && job.status === "succeeded") {
    const artifacts = await api("GET", `/v1/jobs/${job.id}/artifacts`);
    return el("div", {}, el("h3", {}, `Artifacts in ${artifacts.directory}`),
      el("ul", {}, artifacts.files.map((f) => el("li", {}, `${f.path} (${f.bytes} bytes)`))));
  }
  return null;
}

async function details(job) {
  const box = el("div", { class: "details" }, el("h3", {}, "Metrics"), json(job.metrics));
  if (job.error) box.append(el("h3", {}, "Error"), el("pre", { class: "json" }, job.error));
  box.append(el("h3", {}, "Configuration"), json(job.config));
  try {
    const extra = await outputs(job);
    if (extra) box.append(extra);
  } catch (error) {
    box.append(el("p", { class: "muted" }, `Outputs unavailable: ${error.message}`));
  }
  return box;
}

async function cancel(job) {
  try {
    await api("POST", `/v1/jobs/${job.id}/cancel`);
    announce(`Job #${job.id} cancelled.`, "ok");
  } catch (error) {
    announce(`Could not cancel job #${job.id}: ${error.message}`, "error");
  }
  await refresh();
}

function row(job) {
  const p = job.progress;
  const toggle = el(
    "button",
    {
      type: "button",
      id: `toggle-${job.id}`,
      "aria-expanded": String(open.has(String(job.id))),
      "aria-controls": `details-${job.id}`,
    },
    open.has(String(job.id)) ? "Hide" : "Details",
  );
  toggle.addEventListener("click", async () => {
    if (open.has(String(job.id))) open.delete(String(job.id));
    else open.add(String(job.id));
    await refresh();
  });
  return el(
    "tr",
    { id: `job-${job.id}` },
    el("th", { scope: "row" }, `#${job.id}`),
    el("td", {}, job.kind),
    el("td", {}, job.project_id ? el("a", { href: `/ui/project?id=${job.project_id}` }, String(job.project_id)) : "–"),
    el("td", { class: `status-${job.status}` }, job.status),
    el(
      "td",
      {},
      el("progress", { max: String(p.total || 1), value: String(p.done), "aria-label": `Job ${job.id} progress` }),
      ` ${p.done} / ${p.total}`,
      p.dead ? ` · ${p.dead} failed` : "",
    ),
    el("td", {}, String(p.attempts)),
    el(
      "td",
      {},
      toggle,
      " ",
      ACTIVE.has(job.status)
        ? el("button", { type: "button", id: `cancel-${job.id}`, onclick: () => cancel(job), "aria-label": `Cancel job ${job.id}` }, "Cancel")
        : null,
    ),
  );
}

async function refresh() {
  clearTimeout(timer);
  let active = true;
  try {
    active = await draw();
  } catch (error) {
    announce(`Could not refresh the jobs: ${error.message}; trying again.`, "error");
  } finally {
    if (active) timer = setTimeout(refresh, 2000);
  }
}

/** Draw the table; whether any job is still active. */
async function draw() {
  const focused = document.activeElement?.id; // re-rendering must not take the focus away
  const query = projectId ? `?project_id=${projectId}&limit=500` : "?limit=500";
  const jobs = (await allPages(`/v1/jobs${query}`)).reverse(); // newest first
  const body = [];
  for (const job of jobs) {
    body.push(row(job));
    if (open.has(String(job.id))) {
      body.push(el("tr", { id: `details-${job.id}` }, el("td", { colspan: "7" }, await details(job))));
    }
  }
  document.getElementById("content").replaceChildren(
    jobs.length
      ? el(
          "div",
          { class: "table-wrap" },
          el(
            "table",
            {},
            el("caption", { class: "muted" }, "Progress refreshes every 2 seconds while a job is queued or running."),
            el("thead", {}, el("tr", {}, ["Job", "Kind", "Project", "Status", "Progress", "Attempts", ""].map((h) => el("th", { scope: "col" }, h)))),
            el("tbody", {}, body),
          ),
        )
      : el("p", {}, "No jobs yet. Start one from a project's page."),
  );
  if (focused) document.getElementById(focused)?.focus();
  return jobs.some((j) => ACTIVE.has(j.status));
}

async function main() {
  await header("jobs");
  if (projectId) document.getElementById("title").textContent = `Jobs of project ${projectId}`;
  await refresh();
}

main().catch((error) => announce(`Something went wrong: ${error.message}`, "error"));
