// The annotator's page: lease the next item of a project, label it (pairwise, listwise or
// binary) with the mouse or the keyboard, submit or skip, and go on to the next.

import { ApiError, allPages, announce, api, el, header, idParam, requireKey } from "./api.js";
import { renderMarkdown } from "./markdown.js";

requireKey();
const projectId = idParam("project");
const $ = (id) => document.getElementById(id);
let assignment = null;
let ui = null; // the current item's controls: { value(), keys: {key: action}, help: [...] }
let busy = false;

function md(text) {
  const box = el("div", { class: "md" });
  box.append(renderMarkdown(text));
  return box;
}

function radios(legend, name, options, hint) {
  const group = el(
    "fieldset",
    { class: "choices" },
    el("legend", {}, legend, hint ? el("span", { class: "muted" }, ` ${hint}`) : null),
    options.map(([value, label, key]) =>
      el(
        "label",
        { class: "choice" },
        el("input", { type: "radio", name, value }),
        el("span", {}, label),
        key ? el("kbd", {}, key) : null,
      ),
    ),
  );
  return group;
}

function checked(form, name) {
  const input = form.querySelector(`input[name="${name}"]:checked`);
  return input ? input.value : null;
}

function pick(form, name, value) {
  const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
  if (input && !input.disabled) {
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }
}

function responseCard(label, response) {
  return el(
    "section",
    { class: "response", "aria-label": `Response ${label}` },
    el("h3", {}, `Response ${label}`),
    md(response.text),
  );
}

function pairwiseUi(item, form) {
  const [a, b] = item.responses;
  const choice = radios("Which response is better?", "choice", [
    ["a", "A is better", "A"],
    ["tie", "Tie", "T"],
    ["b", "B is better", "B"],
  ]);
  const strength = radios(
    "How much better?",
    "strength",
    [
      ["1", "Slightly", "1"],
      ["2", "Clearly", "2"],
      ["3", "Much", "3"],
    ],
    "(optional)",
  );
  choice.addEventListener("change", () => {
    const tie = checked(form, "choice") === "tie";
    for (const input of strength.querySelectorAll("input")) {
      input.disabled = tie;
      if (tie) input.checked = false;
    }
  });
  return {
    nodes: [el("div", { class: "pair" }, responseCard("A", a), responseCard("B", b)), choice, strength],
    keys: {
      a: () => pick(form, "choice", "a"),
      b: () => pick(form, "choice", "b"),
      t: () => pick(form, "choice", "tie"),
      1: () => pick(form, "strength", "1"),
      2: () => pick(form, "strength", "2"),
      3: () => pick(form, "strength", "3"),
    },
    help: [["A / B / T", "A is better, B is better, tie"], ["1 / 2 / 3", "slightly, clearly, much better"]],
    value() {
      const picked = checked(form, "choice");
      if (!picked) return { error: "Choose A, B or tie first.", focus: choice.querySelector("input") };
      const level = checked(form, "strength");
      return { kind: "pairwise", choice: picked, strength: level ? Number(level) : null };
    },
  };
}

function binaryUi(item, form) {
  const rating = radios("Is this response good?", "rating", [
    ["up", "👍 Good", "U"],
    ["down", "👎 Bad", "D"],
  ]);
  return {
    nodes: [responseCard("", item.responses[0]), rating],
    keys: { u: () => pick(form, "rating", "up"), d: () => pick(form, "rating", "down") },
    help: [["U / D", "thumbs up, thumbs down"]],
    value() {
      const picked = checked(form, "rating");
      if (!picked) return { error: "Choose good or bad first.", focus: rating.querySelector("input") };
      return { kind: "binary", rating: picked };
    },
  };
}

function listwiseUi(item) {
  const rows = item.responses.map((response) => ({ response, tied: false }));
  const list = el("ol", { class: "ranking", "aria-label": "Ranking, best first" });
  let dragged = null;

  function move(from, to, focus = true) {
    if (to < 0 || to >= rows.length || from === to) return;
    const [row] = rows.splice(from, 1);
    rows.splice(to, 0, row);
    draw(focus ? to : null);
    announce(`Moved to place ${to + 1} of ${rows.length}.`);
  }

  function draw(focusIndex = null) {
    list.replaceChildren(
      ...rows.map((row, index) => {
        const tie = el("input", {
          type: "checkbox",
          id: `tie-${row.response.id}`,
          disabled: index === 0,
          onchange: (event) => {
            row.tied = event.target.checked;
          },
        });
        tie.checked = index > 0 && row.tied;
        const node = el(
          "li",
          {
            class: "ranked",
            tabindex: "0",
            draggable: "true",
            "data-response-id": row.response.id,
            "aria-label": `Place ${index + 1}: response ${row.response.position + 1}`,
            ondragstart: () => {
              dragged = index;
            },
            ondragover: (event) => event.preventDefault(),
            ondrop: (event) => {
              event.preventDefault();
              if (dragged !== null) move(dragged, index, false);
              dragged = null;
            },
            onkeydown: (event) => {
              if (event.target !== node || event.ctrlKey || event.metaKey) return;
              const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
              const plain = !event.altKey;
              if ((event.altKey && key === "ArrowUp") || (plain && key === "k")) {
                event.preventDefault();
                move(index, index - 1);
              } else if ((event.altKey && key === "ArrowDown") || (plain && key === "j")) {
                event.preventDefault();
                move(index, index + 1);
              } else if (event.key === "=" && index > 0) {
                event.preventDefault();
                row.tied = !row.tied;
                draw(index);
              }
            },
          },
          el(
            "div",
            { class: "ranked-head" },
            el("span", { class: "place" }, `${index + 1}`),
            el("h3", {}, `Response ${row.response.position + 1}`),
            el(
              "button",
              { type: "button", "aria-label": `Move response ${row.response.position + 1} up`, disabled: index === 0, onclick: () => move(index, index - 1) },
              "↑",
            ),
            el(
              "button",
              { type: "button", "aria-label": `Move response ${row.response.position + 1} down`, disabled: index === rows.length - 1, onclick: () => move(index, index + 1) },
              "↓",
            ),
            el("label", { class: "tie", for: `tie-${row.response.id}` }, tie, " tied with the one above"),
          ),
          md(row.response.text),
        );
        return node;
      }),
    );
    if (focusIndex !== null) list.children[focusIndex].focus();
  }

  draw();
  return {
    nodes: [el("p", { class: "muted" }, "Order the responses best first: drag them, or focus one and press Alt+↑ / Alt+↓ (or K / J)."), list],
    keys: {},
    help: [["Alt+↑ / Alt+↓ or K / J", "move the focused response up or down"], ["=", "tie the focused response with the one above"]],
    value() {
      const groups = [];
      rows.forEach((row, index) => {
        if (index > 0 && row.tied) groups[groups.length - 1].push(row.response.id);
        else groups.push([row.response.id]);
      });
      return { kind: "listwise", ranking: groups.map((g) => (g.length === 1 ? g[0] : g)) };
    },
  };
}

const BUILDERS = { pairwise: pairwiseUi, binary: binaryUi, listwise: listwiseUi };

function show(section) {
  for (const id of ["item", "done", "expired"]) $(id).hidden = id !== section;
}

async function refreshProgress() {
  const progress = await api("GET", `/v1/projects/${projectId}/progress`);
  $("progress").textContent = `${progress.done} done · ${progress.remaining} remaining`;
}

function render(leased) {
  assignment = leased;
  const form = $("item");
  const item = leased.item;
  $("prompt").replaceChildren(renderMarkdown(item.prompt));
  ui = BUILDERS[item.kind](item, form);
  $("feedback").replaceChildren(...ui.nodes);
  $("rationale").value = "";
  const until = new Date(leased.lease_expires_at);
  $("lease").textContent = `Held for you until ${until.toLocaleTimeString()}`;
  $("shortcuts").replaceChildren(
    ...[...ui.help, ["Enter", "submit"], ["S", "skip"], ["R", "write a rationale"], ["Ctrl+Enter", "submit from the rationale box"]].flatMap(([keys, what]) => [
      el("dt", {}, keys),
      el("dd", {}, what),
    ]),
  );
  show("item");
  $("prompt-heading").focus();
}

async function next() {
  busy = true;
  let leased;
  try {
    leased = await api("POST", `/v1/projects/${projectId}/assignments`);
  } finally {
    busy = false;
  }
  if (leased === null) {
    assignment = null;
    show("done");
    announce("Nothing left for you in this project.");
    $("again").focus();
  } else {
    render(leased);
  }
  await refreshProgress();
}

async function submit() {
  if (busy || !assignment) return;
  const value = ui.value();
  if (value.error) {
    announce(value.error, "error");
    value.focus?.focus();
    return;
  }
  const rationale = $("rationale").value.trim();
  if (rationale) value.rationale = rationale;
  busy = true;
  $("submit").disabled = true;
  try {
    await api("POST", `/v1/assignments/${assignment.id}/labels`, { body: value });
  } catch (error) {
    if (error instanceof ApiError && error.status === 409 && /lease expired/.test(error.message)) {
      $("expired-title").textContent = "This item's lease expired";
      const why = error.message.charAt(0).toUpperCase() + error.message.slice(1);
      $("expired-message").textContent = `${why}. Your label was not stored.`;
      show("expired");
      announce("The lease on this item expired.", "error");
      $("next").focus();
    } else {
      announce(`Not saved: ${error.message}`, "error");
    }
    return;
  } finally {
    busy = false;
    $("submit").disabled = false;
  }
  announce("Saved.", "ok");
  await moveOn();
}

/** The next item, saying so if it cannot be fetched (the last label is safe either way). */
async function moveOn() {
  try {
    await next();
  } catch (error) {
    announce(`Could not get the next item: ${error.message}. Press N or reload to try again.`, "error");
    assignment = null;
    $("expired-title").textContent = "Could not get the next item";
    $("expired-message").textContent = `${error.message}. Your last label is saved.`;
    show("expired");
    $("next").focus();
  }
}

async function skip() {
  if (busy || !assignment) return;
  busy = true;
  try {
    await api("POST", `/v1/assignments/${assignment.id}/skip`);
  } catch (error) {
    announce(`Could not skip: ${error.message}`, "error");
    return;
  } finally {
    busy = false;
  }
  announce("Skipped.");
  await moveOn();
}

function onKey(event) {
  const typing = event.target.matches("textarea, input[type=text], input[type=password]");
  if (typing) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape") {
      event.target.blur();
    }
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.repeat) return; // a held key must not label or skip the items that follow
  if (!$("expired").hidden && event.key.toLowerCase() === "n") {
    event.preventDefault();
    moveOn();
    return;
  }
  if ($("item").hidden || !ui) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (event.target.closest("li.ranked") && ["j", "k", "="].includes(key)) return;
  if (key === "Enter" && !event.target.matches("button, a, summary")) {
    event.preventDefault();
    submit();
  } else if (key === "s") {
    event.preventDefault();
    skip();
  } else if (key === "r") {
    event.preventDefault();
    $("rationale").focus();
  } else if (ui.keys[key]) {
    event.preventDefault();
    ui.keys[key]();
  }
}

async function chooseProject() {
  $("chooser").hidden = false;
  const projects = await allPages("/v1/projects?limit=500");
  const list = $("projects");
  if (!projects.length) {
    list.replaceChildren(el("li", {}, "No projects yet."));
    return;
  }
  list.replaceChildren(
    ...projects.map((p) =>
      el(
        "li",
        { class: "card" },
        el("a", { href: `/ui/annotate?project=${p.id}` }, p.name),
        el("span", { class: "muted" }, ` ${p.kind} · ${p.items_total} items`),
      ),
    ),
  );
  list.querySelector("a")?.focus();
}

async function main() {
  await header("annotate");
  if (!projectId) {
    await chooseProject();
    return;
  }
  const project = await api("GET", `/v1/projects/${projectId}`);
  document.title = `${project.name} · Annotate · Arbiter`;
  $("project-name").textContent = project.name;
  if (project.instructions) $("instructions").replaceChildren(renderMarkdown(project.instructions));
  else $("instructions-box").hidden = true;
  $("work").hidden = false;
  $("item").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  $("skip").addEventListener("click", skip);
  $("again").addEventListener("click", moveOn);
  $("next").addEventListener("click", moveOn);
  document.addEventListener("keydown", onKey);
  await next();
}

main().catch((error) => announce(`Something went wrong: ${error.message}`, "error"));
