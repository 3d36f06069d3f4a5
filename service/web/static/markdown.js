// A small Markdown renderer that builds DOM nodes and never parses HTML: imported text can
// hold <script> or onerror=... and it shows up as the characters it is. Blocks: fenced code,
// headings, block quotes, lists, paragraphs (line breaks kept); inline: `code`, **bold**,
// *italic*, and [links](https://...) to http(s) addresses only.

const INLINE =
  /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s][^*\n]*\*)|(\[[^\]\n]+\]\((https?:\/\/[^)\s]+)\))/g;

function inline(text) {
  const out = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) out.append(lines(text.slice(last, match.index)));
    const [whole, code, bold, italic, link, href] = match;
    let node;
    if (code) {
      node = document.createElement("code");
      node.textContent = code.slice(1, -1);
    } else if (bold) {
      node = document.createElement("strong");
      node.textContent = bold.slice(2, -2);
    } else if (italic) {
      node = document.createElement("em");
      node.textContent = italic.slice(1, -1);
    } else if (link) {
      node = document.createElement("a");
      node.textContent = link.slice(1, link.indexOf("]("));
      node.href = href;
      node.rel = "noopener noreferrer nofollow";
      node.target = "_blank";
    }
    out.append(node);
    last = match.index + whole.length;
  }
  if (last < text.length) out.append(lines(text.slice(last)));
  return out;
}

function lines(text) {
  const out = document.createDocumentFragment();
  text.split("\n").forEach((line, n) => {
    if (n > 0) out.append(document.createElement("br"));
    out.append(document.createTextNode(line));
  });
  return out;
}

function block(tag, text) {
  const node = document.createElement(tag);
  node.append(inline(text));
  return node;
}

/** The text as a fragment of safe DOM nodes. */
export function renderMarkdown(text) {
  const out = document.createDocumentFragment();
  const rows = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < rows.length) {
    const row = rows[i];
    if (/^\s*```/.test(row)) {
      const code = [];
      i += 1;
      while (i < rows.length && !/^\s*```/.test(rows[i])) code.push(rows[i++]);
      i += 1;
      const pre = document.createElement("pre");
      const inner = document.createElement("code");
      inner.textContent = code.join("\n");
      pre.append(inner);
      out.append(pre);
    } else if (/^#{1,6}\s/.test(row)) {
      const level = Math.min(row.match(/^#+/)[0].length + 2, 6); // below the page's headings
      out.append(block(`h${level}`, row.replace(/^#+\s*/, "")));
      i += 1;
    } else if (/^\s*>/.test(row)) {
      const quoted = [];
      while (i < rows.length && /^\s*>/.test(rows[i])) quoted.push(rows[i++].replace(/^\s*>\s?/, ""));
      out.append(block("blockquote", quoted.join("\n")));
    } else if (/^\s*([-*+]|\d+[.)])\s+/.test(row)) {
      const ordered = /^\s*\d/.test(row);
      const list = document.createElement(ordered ? "ol" : "ul");
      while (i < rows.length && /^\s*([-*+]|\d+[.)])\s+/.test(rows[i])) {
        list.append(block("li", rows[i++].replace(/^\s*([-*+]|\d+[.)])\s+/, "")));
      }
      out.append(list);
    } else if (!row.trim()) {
      i += 1;
    } else {
      const para = [];
      while (i < rows.length && rows[i].trim() && !/^\s*(```|#{1,6}\s|>|[-*+]\s|\d+[.)]\s)/.test(rows[i])) {
        para.push(rows[i++]);
      }
      if (!para.length) para.push(rows[i++]);
      out.append(block("p", para.join("\n")));
    }
  }
  return out;
}
