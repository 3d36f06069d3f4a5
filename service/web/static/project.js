// Operators: one project: progress, agreement, the judges' quality reports, dataset exports
// and starting jobs.

import { announce, api, el, fmt, header, idParam, requireKey } from "./api.js";

requireKey();
const projectId = idParam("id");

function panel(title, id, ...children) {
  return el("section", { class: "panel", "aria-labelledby": id }, el("h2", { id }, title), ...children);
}

function facts(pairs) {
  return el("dl", {}, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function table(caption, heads, rows) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      {},
      el("caption", { class: "muted" }, caption),
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))),
    ),
  );
}

function field(label, id, control) {
  control.id = id;
  return el("div", {}, el("label", { for: id }, label), control);
}

function select(name, options) {
  return el("select", { name }, options.map((o) => el("option", { value: o }, o)));
}

function agreementPanel(a) {
  return panel(
    "Agreement",
    "agreement",
    facts([
      ["Labels", String(a.n_labels)],
      ["Annotators", String(a.n_annotators)],
      ["Cohen's kappa", fmt(a.cohen_kappa)],
      ["Krippendorff's alpha", fmt(a.krippendorff_alpha)],
      ["Mean majority share", fmt(a.mean_majority_agreement)],
    ]),
    a.annotators.length
      ? table(
          "Each annotator against the majority of the others",
          ["Annotator", "Labels", "Compared", "Agreement"],
          a.annotators.map((x) => [x.annotator, String(x.n_labels), String(x.n_compared), fmt(x.agreement_with_majority)]),
        )
      : el("p", { class: "muted" }, "No annotator labels yet."),
  );
}

function judgesPanel(reports) {
  if (!reports.judges.length) {
    return panel("AI judges", "judges", el("p", { class: "muted" }, "No judge job has run on this project yet."));
  }
  return panel(
    "AI judges",
    "judges",
    table(
      "Position bias is the first-shown response's win rate before debiasing (0.5 = none).",
      ["Job", "Model", "Template", "Items", "Position bias", "Consistent", "Ties", "Agrees with humans", "κ vs humans"],
      reports.judges.map((j) => [
        el("a", { href: `/ui/jobs?project=${projectId}#job-${j.job_id}` }, `#${j.job_id}`),
        j.judge_model,
        j.template,
        String(j.n_items),
        fmt(j.first_position_win_rate),
        fmt(j.position_consistency_rate),
        fmt(j.tie_rate),
        `${fmt(j.human_agreement.accuracy)} (${j.human_agreement.n_units} units)`,
        fmt(j.human_agreement.cohen_kappa),
      ]),
    ),
  );
}

const NUMBER = { type: "number", min: "0", max: "1", step: "0.05" };
const EXPORT_FIELDS = [
  "format", "file", "source", "aggregate", "constitutional", "min_agreement", "min_votes",
  "min_confidence", "judge_job_id", "tag", "created_after", "created_before",
];

function exportPanel(project) {
  const formats = project.kind === "binary" ? ["kto", "sft"] : ["dpo", "sft"];
  const consistent = el("input", { type: "checkbox", name: "position_consistent_only", id: "x-consistent" });
  const imported = el("input", { type: "checkbox", name: "include_imported", id: "x-imported" });
  imported.checked = true;
  const form = el(
    "form",
    {},
    el(
      "div",
      { class: "inline" },
      field("Format", "x-format", select("format", formats)),
      field("File", "x-file", select("file", ["jsonl", "parquet"])),
      field("Labels from", "x-source", select("source", ["human", "ai", "both"])),
      field("Rows", "x-aggregate", select("aggregate", ["majority", "none"])),
      field("Constitutional pairs", "x-constitutional", select("constitutional", ["include", "exclude", "only"])),
      field("Tag", "x-tag", el("input", { type: "text", name: "tag", maxlength: "200" })),
    ),
    el(
      "div",
      { class: "inline" },
      field("Minimum agreement", "x-agreement", el("input", { ...NUMBER, name: "min_agreement" })),
      field("Minimum votes", "x-votes", el("input", { type: "number", name: "min_votes", min: "1", max: "1000" })),
      field("Minimum AI confidence", "x-confidence", el("input", { ...NUMBER, name: "min_confidence" })),
      field("Judge job", "x-judge", el("input", { type: "number", name: "judge_job_id", min: "1" })),
      field("Labeled after (UTC)", "x-after", el("input", { type: "datetime-local", name: "created_after" })),
      field("Labeled before (UTC)", "x-before", el("input", { type: "datetime-local", name: "created_before" })),
    ),
    el("label", { class: "check" }, consistent, " AI labels whose two orders agree only"),
    el("label", { class: "check" }, imported, " Use imported dataset preferences for unlabeled items"),
    el("p", {}, el("button", { type: "submit", class: "primary" }, "Download")),
    el("p", { id: "export-result", class: "muted", "aria-live": "polite" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const name of EXPORT_FIELDS) {
      if (form[name].value) params.set(name, form[name].value);
    }
    if (consistent.checked) params.set("position_consistent_only", "true");
    if (!imported.checked) params.set("include_imported", "false");
    try {
      const response = await api("GET", `/v1/projects/${projectId}/export?${params}`, { raw: true });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: `${project.name}-${form.format.value}.${form.file.value}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      const rows = response.headers.get("X-Arbiter-Rows");
      const ties = response.headers.get("X-Arbiter-Ties-Skipped");
      document.getElementById("export-result").textContent = `${rows} rows exported (${ties} ties left out).`;
    } catch (error) {
      announce(`Export failed: ${error.message}`, "error");
    }
  });
  return panel("Export a dataset", "export", form);
}

const JOB_TEMPLATES = {
  judge: { template: "helpfulness", items: { limit: 100 } },
  constitution: { rounds: 1, max_tokens: 128, responses: { limit: 20 } },
  train: { method: "dpo", model: "/path/to/base-model", epochs: 1 },
};

function jobPanel() {
  const config = el("textarea", { name: "config", rows: "6", spellcheck: "false" });
  const kind = select("kind", Object.keys(JOB_TEMPLATES));
  const fill = () => {
    config.value = JSON.stringify(JOB_TEMPLATES[kind.value], null, 2);
  };
  kind.addEventListener("change", fill);
  fill();
  const form = el(
    "form",
    {},
    el("div", { class: "inline" }, field("Kind", "j-kind", kind)),
    field("Configuration (JSON)", "j-config", config),
    el("p", {}, el("button", { type: "submit", class: "primary" }, "Start job")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(config.value || "{}");
    } catch {
      announce("The configuration is not valid JSON.", "error");
      config.focus();
      return;
    }
    try {
      const job = await api("POST", "/v1/jobs", {
        body: { kind: kind.value, project_id: Number(projectId), config: parsed },
      });
      announce(`Job #${job.id} started.`, "ok");
      location.assign(`/ui/jobs?project=${projectId}#job-${job.id}`);
    } catch (error) {
      announce(`Not started: ${error.field ? `${error.field}: ` : ""}${error.message}`, "error");
    }
  });
  return panel("Start a job", "start-job", form);
}

async function main() {
  await header("projects");
  if (!projectId) {
    announce("No project given: open one from the projects page.", "error");
    return;
  }
  const [project, agreement, judges] = await Promise.all([
    api("GET", `/v1/projects/${projectId}`),
    api("GET", `/v1/projects/${projectId}/agreement`),
    api("GET", `/v1/projects/${projectId}/reports/judges`),
  ]);
  document.title = `${project.name} · Arbiter`;
  document.getElementById("title").textContent = project.name;
  document.getElementById("content").replaceChildren(
    panel(
      "Progress",
      "progress",
      el("progress", { max: String(project.items_total || 1), value: String(project.items_complete), "aria-label": "Items done" }),
      facts([
        ["Feedback", project.kind],
        ["Annotators per item", String(project.overlap)],
        ["Items done", `${project.items_complete} of ${project.items_total}`],
        ["Labels", String(project.labels_total)],
      ]),
      el("p", {}, el("a", { href: `/ui/annotate?project=${projectId}` }, "Annotate this project"), " · ",
        el("a", { href: `/ui/jobs?project=${projectId}` }, "Its jobs")),
    ),
    agreementPanel(agreement),
    judgesPanel(judges),
    exportPanel(project),
    jobPanel(),
  );
}

main().catch((error) => announce(`Something went wrong: ${error.message}`, "error"));
