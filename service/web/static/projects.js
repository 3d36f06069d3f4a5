// Operators: every project with its progress and agreement; create a project.

import { allPages, announce, api, el, fmt, header, requireKey } from "./api.js";

requireKey();

function field(label, id, control) {
  control.id = id;
  return el("div", {}, el("label", { for: id }, label), control);
}

function createForm(reload) {
  const form = el(
    "form",
    { class: "panel", "aria-labelledby": "new-project" },
    el("h2", { id: "new-project" }, "New project"),
    el(
      "div",
      { class: "inline" },
      field("Name", "p-name", el("input", { type: "text", name: "name", required: true, maxlength: "200" })),
      field(
        "Feedback",
        "p-kind",
        el("select", { name: "kind" }, ["pairwise", "listwise", "binary"].map((k) => el("option", { value: k }, k))),
      ),
      field("Annotators per item", "p-overlap", el("input", { type: "number", name: "overlap", min: "1", max: "100", value: "1" })),
    ),
    field("Instructions (Markdown)", "p-instructions", el("textarea", { name: "instructions", rows: "3" })),
    el("p", {}, el("button", { type: "submit", class: "primary" }, "Create project")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("POST", "/v1/projects", {
        body: {
          name: form.name.value,
          kind: form.kind.value,
          overlap: Number(form.overlap.value),
          instructions: form.instructions.value,
        },
      });
      announce(`Project ${made.name} created.`, "ok");
      form.reset();
      await reload();
    } catch (error) {
      announce(`Not created: ${error.message}`, "error");
    }
  });
  return form;
}

async function table() {
  const projects = await allPages("/v1/projects?limit=500");
  const agreements = await Promise.all(
    projects.map((p) => api("GET", `/v1/projects/${p.id}/agreement`).catch(() => null)),
  );
  if (!projects.length) return el("p", {}, "No projects yet.");
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      {},
      el("caption", { class: "muted" }, "Progress counts items with all their annotators; agreement is Krippendorff's alpha."),
      el(
        "thead",
        {},
        el("tr", {}, ["Project", "Feedback", "Items done", "Labels", "Agreement (α)", "Annotators"].map((h) => el("th", { scope: "col" }, h))),
      ),
      el(
        "tbody",
        {},
        projects.map((p, n) =>
          el(
            "tr",
            {},
            el("th", { scope: "row" }, el("a", { href: `/ui/project?id=${p.id}` }, p.name)),
            el("td", {}, p.kind),
            el(
              "td",
              {},
              el("progress", { max: String(p.items_total || 1), value: String(p.items_complete), "aria-label": `${p.name}: items done` }),
              ` ${p.items_complete} / ${p.items_total}`,
            ),
            el("td", {}, String(p.labels_total)),
            el("td", {}, fmt(agreements[n]?.krippendorff_alpha)),
            el("td", {}, String(agreements[n]?.n_annotators ?? "–")),
          ),
        ),
      ),
    ),
  );
}

async function main() {
  await header("projects");
  const content = document.getElementById("content");
  const reload = async () => content.replaceChildren(await table(), createForm(reload));
  await reload();
}

main().catch((error) => announce(`Something went wrong: ${error.message}`, "error"));
