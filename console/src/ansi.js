// Run output with ANSI escapes, made safe: the text is split into spans whose classes come
// from SGR codes (16 colours, bold, dim, italic, underline; 256-colour codes below 16 map to
// those); every other escape sequence is dropped. The pieces are rendered as text nodes, never
// as HTML, so "<script>" in a run's output is shown, not run.
const ESC = /\x1b\[([0-9;?]*)([A-Za-z])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

function apply(st, params) {
  const p = params === "" ? [0] : params.split(";").map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0) { st.fg = st.bg = null; st.b = st.d = st.i = st.u = false; }
    else if (c === 1) st.b = true;
    else if (c === 2) st.d = true;
    else if (c === 3) st.i = true;
    else if (c === 4) st.u = true;
    else if (c === 22) st.b = st.d = false;
    else if (c === 23) st.i = false;
    else if (c === 24) st.u = false;
    else if (c >= 30 && c <= 37) st.fg = c - 30;
    else if (c >= 90 && c <= 97) st.fg = c - 90 + 8;
    else if (c === 39) st.fg = null;
    else if (c >= 40 && c <= 47) st.bg = c - 40;
    else if (c >= 100 && c <= 107) st.bg = c - 100 + 8;
    else if (c === 49) st.bg = null;
    else if ((c === 38 || c === 48) && p[i + 1] === 5) {
      const n = p[i + 2];
      if (n < 16) { if (c === 38) st.fg = n; else st.bg = n; }
      i += 2;
    } else if ((c === 38 || c === 48) && p[i + 1] === 2) i += 4;
  }
}

function cls(st) {
  const c = [];
  if (st.fg !== null) c.push("fg" + st.fg);
  if (st.bg !== null) c.push("bg" + st.bg);
  if (st.b) c.push("ab");
  if (st.d) c.push("ad");
  if (st.i) c.push("ai");
  if (st.u) c.push("au");
  return c.join(" ");
}

// [{text, cls}] for a string with escapes.
export function parseAnsi(s) {
  const out = [];
  const st = { fg: null, bg: null, b: false, d: false, i: false, u: false };
  let last = 0;
  let m;
  ESC.lastIndex = 0;
  const push = (t) => { if (t) out.push({ text: t.replace(/\r(?!\n)/g, ""), cls: cls(st) }); };
  while ((m = ESC.exec(s))) {
    push(s.slice(last, m.index));
    if (m[2] === "m") apply(st, m[1]);
    last = ESC.lastIndex;
  }
  push(s.slice(last));
  return out;
}
