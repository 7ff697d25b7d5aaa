// Serves Cloudflare's D1 REST shape over a D1 binding so tests and the
// benchmark talk to a real D1 engine (workerd + D1's SQLite) through the same
// HTTP client as production.
//
//   POST /client/v4/accounts/:account/d1/database/:db/query   -> rows as objects
//   POST /client/v4/accounts/:account/d1/database/:db/raw     -> {columns, rows}
//   body: {sql, params?} or {batch: [{sql, params?}, ...]}
//
// Every statement of a request goes through one env.DB.batch() call, which D1
// runs as a single transaction, like the REST API does.

const ROUTE = /^\/client\/v4\/accounts\/[^/]+\/d1\/database\/[^/]+\/(query|raw)$/;
const TIME_TRAVEL = /^\/client\/v4\/accounts\/[^/]+\/d1\/database\/[^/]+\/time_travel\/(bookmark|restore)$/;

// D1 Time Travel cannot run outside Cloudflare; this stand-in keeps the REST
// shape (GET .../time_travel/bookmark -> {bookmark}; POST .../restore?bookmark=)
// by copying every table's rows into memory, so tests can take a restore
// point and go back to it. Restoring re-inserts rows with triggers dropped
// and re-created around it, like a point-in-time restore would.
const bookmarks = new Map();

async function userObjects(env) {
  const { results } = await env.DB.prepare(
    "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND sql IS NOT NULL",
  ).all();
  return results;
}

async function timeTravel(kind, url, request, env) {
  if (kind === "bookmark") {
    if (request.method !== "GET") return failure(405, 7405, "method not allowed");
    const objects = await userObjects(env);
    const tables = {};
    for (const o of objects.filter((o) => o.type === "table")) {
      const { results } = await env.DB.prepare(`SELECT * FROM "${o.name.replaceAll('"', '""')}"`).all();
      tables[o.name] = results;
    }
    const bookmark = `${String(bookmarks.size + 1).padStart(8, "0")}-00000000-00004f6d-local`;
    bookmarks.set(bookmark, { objects, tables });
    return envelope({ bookmark });
  }
  if (request.method !== "POST") return failure(405, 7405, "method not allowed");
  const bookmark = url.searchParams.get("bookmark");
  const saved = bookmarks.get(bookmark);
  if (!saved) return failure(400, 7500, `unknown bookmark ${bookmark}`);
  const current = await userObjects(env);
  const statements = [];
  for (const o of current.filter((o) => o.type === "trigger")) statements.push(`DROP TRIGGER "${o.name}"`);
  for (const o of current.filter((o) => o.type === "table")) statements.push(`DROP TABLE "${o.name}"`);
  const order = ["table", "index", "view"];
  for (const type of order) for (const o of saved.objects.filter((o) => o.type === type)) statements.push(o.sql);
  const prepared = statements.map((sql) => env.DB.prepare(sql));
  for (const [table, rows] of Object.entries(saved.tables)) {
    for (const row of rows) {
      const cols = Object.keys(row);
      const sql = `INSERT INTO "${table}" (${cols.map((c) => `"${c}"`).join(",")}) VALUES (${cols.map(() => "?").join(",")})`;
      prepared.push(env.DB.prepare(sql).bind(...cols.map((c) => row[c])));
    }
  }
  for (const o of saved.objects.filter((o) => o.type === "trigger")) prepared.push(env.DB.prepare(o.sql));
  await env.DB.batch(prepared);
  const previous = `${String(bookmarks.size + 1).padStart(8, "0")}-00000000-00004f6d-local`;
  return envelope({ bookmark, previous_bookmark: previous, message: "Restored (local stand-in)" });
}

function envelope(result, status = 200, errors = []) {
  return new Response(
    JSON.stringify({ result, success: errors.length === 0, errors, messages: [] }),
    { status, headers: { "content-type": "application/json" } },
  );
}

function failure(status, code, message) {
  return envelope(null, status, [{ code, message }]);
}

// Splits a SQL text into statements on top-level semicolons. prepare() with
// several statements runs them all but returns only the last result, so the
// REST shape (one result per statement) needs the split. Quotes, comments and
// CREATE TRIGGER ... BEGIN ... END bodies are respected.
export function splitSql(sql) {
  const out = [];
  let start = 0;
  let depth = 0;
  let i = 0;
  const n = sql.length;
  const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
  while (i < n) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === "`") {
      const q = c;
      i++;
      while (i < n) {
        if (sql[i] === q) {
          if (sql[i + 1] === q) { i += 2; continue; }
          break;
        }
        i++;
      }
      i++;
    } else if (c === "[") {
      while (i < n && sql[i] !== "]") i++;
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      while (i < n && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (/[A-Za-z_]/.test(c) && (i === 0 || !/[A-Za-z0-9_]/.test(sql[i - 1]))) {
      WORD.lastIndex = i;
      const w = WORD.exec(sql)[0];
      const upper = w.length <= 5 ? w.toUpperCase() : "";
      // Only BEGIN/END matter, and only inside CREATE TRIGGER; checking the
      // statement head for other words would make long INSERTs quadratic.
      if (upper === "BEGIN" || (upper === "END" && depth > 0)) {
        if (upper === "END") depth--;
        else {
          const head = sql.slice(start, i).replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, " ").trim().toUpperCase();
          if (head.startsWith("CREATE") && /\bTRIGGER\b/.test(head)) depth++;
        }
      }
      i += w.length;
    } else if (c === ";" && depth === 0) {
      const stmt = sql.slice(start, i).trim();
      if (stmt) out.push(stmt);
      start = i + 1;
      i++;
    } else {
      i++;
    }
  }
  const tail = sql.slice(start).trim();
  if (tail && !/^(--[^\n]*\n?|\s)*$/.test(tail)) out.push(tail);
  return out;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__health") return new Response("ok");
    const travel = TIME_TRAVEL.exec(url.pathname);
    if (travel) return timeTravel(travel[1], url, request, env);
    const match = ROUTE.exec(url.pathname);
    if (!match) return failure(404, 7404, `no route for ${url.pathname}`);
    if (request.method !== "POST") return failure(405, 7405, "method not allowed");
    const raw = match[1] === "raw";

    let body;
    try {
      body = await request.json();
    } catch (e) {
      return failure(400, 7400, `invalid JSON body: ${e.message}`);
    }
    const items = Array.isArray(body.batch) ? body.batch : [{ sql: body.sql, params: body.params }];

    const prepared = [];
    try {
      for (const item of items) {
        if (typeof item.sql !== "string") throw new Error("sql must be a string");
        const params = item.params ?? [];
        const parts = splitSql(item.sql);
        if (parts.length > 1 && params.length > 0) {
          throw new Error("bound parameters need a single statement");
        }
        for (const part of parts) {
          const stmt = env.DB.prepare(part);
          prepared.push(params.length ? stmt.bind(...params) : stmt);
        }
      }
    } catch (e) {
      return failure(400, 7500, `${e.message}: SQLITE_ERROR`);
    }
    if (prepared.length === 0) return envelope([]);

    let results;
    try {
      results = await env.DB.batch(prepared);
    } catch (e) {
      const message = e.cause?.message ?? e.message;
      return failure(400, 7500, message);
    }
    const out = results.map((r) => {
      let payload = r.results ?? [];
      if (raw) {
        const columns = payload.length ? Object.keys(payload[0]) : [];
        payload = { columns, rows: payload.map((row) => columns.map((c) => row[c])) };
      }
      return { results: payload, success: r.success, meta: r.meta };
    });
    return envelope(out);
  },
};
