// The playground: one operation at a time, a form built from the catalog and the OpenAPI
// document the gateway serves, media by upload or URL, live status over the job's event
// stream, the result shown, and the same request as a curl command. The API key lives in
// this page's memory only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ENVELOPE = new Set(["provider", "fallback", "callback_url", "metadata"]);
  const MEDIA = { ImageInput: "image/*", AudioInput: "audio/*", VideoInput: "video/*" };
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const LONG_TEXT = new Set(["prompt", "negative_prompt", "text"]);
  const state = { key: "", spec: null, operations: [], pickers: {}, run: 0 };

  class ApiError extends Error {
    constructor(problem) {
      super(problem.detail || problem.title || `HTTP ${problem.status}`);
      this.problem = problem;
    }
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Authorization", `Bearer ${state.key}`);
    const response = await fetch(path, { ...options, headers });
    if (!response.ok) {
      let problem;
      try {
        problem = await response.json();
      } catch {
        problem = { title: response.statusText, status: response.status };
      }
      throw new ApiError(problem);
    }
    return response;
  }

  async function paged(path) {
    const items = [];
    let cursor = null;
    do {
      const url = cursor ? `${path}?cursor=${encodeURIComponent(cursor)}` : path;
      const page = await (await api(url)).json();
      items.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }

  function element(tag, properties = {}, ...children) {
    const node = Object.assign(document.createElement(tag), properties);
    node.append(...children);
    return node;
  }

  // --- the form -------------------------------------------------------------------------

  function schema(ref) {
    return state.spec.components.schemas[ref.split("/").pop()];
  }

  function describe(property) {
    let p = property;
    if (p.anyOf) p = p.anyOf.find((option) => option.type !== "null") || p;
    if (p.$ref) {
      const name = p.$ref.split("/").pop();
      if (name in MEDIA) return { kind: "media", accept: MEDIA[name] };
      p = schema(p.$ref);
    }
    if (p.enum) return { kind: "choice", values: p.enum };
    if (p.type === "boolean") return { kind: "boolean" };
    if (p.type === "integer" || p.type === "number") {
      return { kind: "number", step: p.type === "integer" ? "1" : "any" };
    }
    if (p.type === "array") return { kind: "list" };
    return { kind: "text" };
  }

  function catalogValues(operation, name, provider) {
    const values = new Set();
    for (const entry of operation.providers) {
      if (provider && entry.name !== provider) continue;
      for (const parameter of entry.parameters) {
        if (parameter.name === name && parameter.values) parameter.values.forEach((v) => values.add(v));
      }
    }
    return [...values];
  }

  async function picker(kind) {
    if (!state.pickers[kind]) state.pickers[kind] = paged(`/v1/${kind}`);
    return state.pickers[kind];
  }

  function select(options, blank) {
    const node = element("select");
    node.append(element("option", { value: "", textContent: blank }));
    for (const [value, label] of options) node.append(element("option", { value, textContent: label }));
    return node;
  }

  async function control(operation, name, kind, provider) {
    if (name === "style_id") {
      const styles = (await picker("styles")).filter((s) => !provider || s.provider === provider);
      return select(styles.map((s) => [s.id, `${s.title} (${s.group_title}, ${s.provider})`]), "—");
    }
    if (name === "voice") {
      const voices = (await picker("voices")).filter((v) => !provider || v.provider === provider);
      return select(voices.map((v) => [v.id, `${v.id} (${v.gender}, ${v.language}, ${v.provider})`]), "—");
    }
    const known = kind.kind === "choice" ? kind.values : catalogValues(operation, name, provider);
    if (known.length) return select(known.map((v) => [v, v]), "default");
    if (kind.kind === "boolean") return select([["true", "true"], ["false", "false"]], "default");
    if (kind.kind === "number") return element("input", { type: "number", step: kind.step });
    if (LONG_TEXT.has(name)) return element("textarea");
    return element("input", {
      type: "text",
      placeholder: kind.kind === "list" ? "comma-separated" : "",
    });
  }

  async function field(operation, name, property, required, provider) {
    const kind = describe(property);
    const wrapper = element("div", { className: "field" });
    wrapper.dataset.name = name;
    wrapper.dataset.kind = kind.kind;
    const label = element("span", { textContent: name, className: required ? "required" : "" });
    wrapper.append(label);
    if (kind.kind === "media") {
      const file = element("input", { type: "file", accept: kind.accept, name: `${name}-file` });
      const url = element("input", { type: "url", placeholder: "https://…", name: `${name}-url` });
      wrapper.append(element("div", { className: "media" }, file, url));
    } else {
      const input = await control(operation, name, kind, provider);
      input.name = name;
      wrapper.append(input);
    }
    if (property.description) wrapper.append(element("small", { textContent: property.description }));
    return wrapper;
  }

  async function renderForm() {
    const operation = state.operations.find((op) => op.name === $("operation").value);
    const provider = $("provider") ? $("provider").value : "";
    const body = schema(state.spec.paths[operation.route].post.requestBody.content["application/json"].schema.$ref);
    const required = new Set(body.required || []);
    const fields = [];
    const providers = select(operation.providers.map((p) => [p.name, `${p.name} (${priceText(p)})`]), "automatic (routing and fallback)");
    providers.id = "provider";
    providers.name = "provider";
    providers.value = provider;
    providers.addEventListener("change", renderForm);
    fields.push(element("div", { className: "field" }, element("span", { textContent: "provider" }), providers));
    for (const [name, property] of Object.entries(body.properties)) {
      if (ENVELOPE.has(name)) continue;
      fields.push(await field(operation, name, property, required.has(name), provider));
    }
    $("operation-route").textContent = `POST ${operation.route}`;
    $("fields").replaceChildren(...fields);
  }

  function priceText(provider) {
    return provider.price === undefined ? "price in catalog" : `${provider.price} credits`;
  }

  // --- running a job --------------------------------------------------------------------

  async function upload(file) {
    const data = new FormData();
    data.append("file", file);
    return (await (await api("/v1/files", { method: "POST", body: data })).json()).id;
  }

  async function collect() {
    const body = {};
    const uploads = [];
    const provider = $("provider").value;
    if (provider) body.provider = provider;
    for (const wrapper of $("fields").querySelectorAll("[data-name]")) {
      const { name, kind } = wrapper.dataset;
      if (kind === "media") {
        const file = wrapper.querySelector("input[type=file]").files[0];
        const url = wrapper.querySelector("input[type=url]").value.trim();
        if (file) {
          body[name] = { file_id: await upload(file) };
          uploads.push(file.name);
        } else if (url) {
          body[name] = { url };
        }
        continue;
      }
      const raw = wrapper.querySelector("input, select, textarea").value.trim();
      if (raw === "") continue;
      if (kind === "number") body[name] = Number(raw);
      else if (kind === "boolean") body[name] = raw === "true";
      else if (kind === "list") body[name] = raw.split(",").map((s) => s.trim()).filter(Boolean);
      else body[name] = raw;
    }
    return { body, uploads };
  }

  function curl(route, body, uploads) {
    const quote = (text) => `'${text.replaceAll("'", "'\\''")}'`;
    const auth = '-H "Authorization: Bearer $MEDIAGATE_API_KEY"';
    const lines = uploads.map(
      (name) => `curl -s ${location.origin}/v1/files ${auth} -F file=@${quote(name)}  # → file_id`,
    );
    lines.push(
      `curl -s ${location.origin}${route} ${auth} \\\n  -H 'Content-Type: application/json' \\\n  -d ${quote(JSON.stringify(body))}`,
    );
    return lines.join("\n");
  }

  function showProblem(problem) {
    const box = $("problem");
    const pointers = (problem.errors || []).map((e) => `${e.pointer || ""} ${e.detail || ""}`.trim());
    box.textContent = [`${problem.status || ""} ${problem.code || ""}: ${problem.detail || problem.title || ""}`, ...pointers].join("\n");
    box.hidden = false;
  }

  function show(job) {
    const progress = job.progress == null || TERMINAL.has(job.status) ? "" : ` ${Math.round(job.progress * 100)} %`;
    const where = job.provider ? ` at ${job.provider}` : "";
    $("status").textContent = `${job.status}${progress}${where} · ${job.id}`;
    $("status").dataset.status = job.status;
    $("events").append(element("li", { textContent: `${new Date().toLocaleTimeString()} ${job.status}${progress}` }));
    if (job.status === "failed" && job.error) showProblem({ code: job.error.code, detail: job.error.message });
    if (job.status === "succeeded") renderResult(job);
  }

  function listOf(value) {
    if (!Array.isArray(value) || !value.length) return null;
    const label = (item) => {
      if (typeof item !== "object" || item === null) return String(item);
      const name = item.keyword ?? item.label ?? item.name ?? item.text ?? JSON.stringify(item);
      const score = item.score ?? item.confidence;
      return score === undefined ? String(name) : `${name} (${Number(score).toFixed(2)})`;
    };
    return element("ul", {}, ...value.map((item) => element("li", { textContent: label(item) })));
  }

  function renderResult(job) {
    const nodes = [];
    for (const artifact of job.output?.artifacts ?? []) {
      const type = artifact.content_type;
      let media;
      if (type.startsWith("image/")) media = element("img", { alt: `artifact ${artifact.id}` });
      else if (type.startsWith("audio/")) media = element("audio", { controls: true });
      else if (type.startsWith("video/")) media = element("video", { controls: true });
      if (media) {
        media.src = artifact.url;
        media.dataset.artifact = artifact.id;
      }
      const link = element("a", { href: artifact.url, textContent: `${artifact.id} · ${type} · ${artifact.bytes} bytes` });
      nodes.push(element("figure", {}, ...(media ? [media] : []), element("figcaption", {}, link)));
    }
    for (const [key, value] of Object.entries(job.output?.data ?? {})) {
      const list = listOf(value);
      const shown = list || element("pre", { textContent: JSON.stringify(value, null, 2) });
      shown.dataset.output = key;
      nodes.push(element("h3", { textContent: key }), shown);
    }
    $("result").replaceChildren(...nodes);
  }

  async function follow(job, run) {
    const response = await api(`/v1/jobs/${job.id}/events`, { headers: { Accept: "text/event-stream" } });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || run !== state.run) break;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf("\n\n");
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (!data) continue;
        const snapshot = JSON.parse(data);
        show(snapshot);
        if (TERMINAL.has(snapshot.status)) {
          await reader.cancel();
          return;
        }
      }
    }
  }

  async function runJob(event) {
    event.preventDefault();
    const run = ++state.run;
    const operation = state.operations.find((op) => op.name === $("operation").value);
    $("problem").hidden = true;
    $("events").replaceChildren();
    $("result").replaceChildren();
    $("status").textContent = "submitting";
    $("run").disabled = true;
    try {
      const { body, uploads } = await collect();
      $("curl").textContent = curl(operation.route, body, uploads);
      const response = await api(operation.route, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const job = await response.json();
      show(job);
      if (!TERMINAL.has(job.status)) await follow(job, run);
    } catch (error) {
      $("status").textContent = "refused";
      $("status").dataset.status = "refused";
      showProblem(error.problem || { detail: String(error) });
    } finally {
      $("run").disabled = false;
    }
  }

  // --- signing in -----------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    state.key = $("api-key").value.trim();
    state.pickers = {};
    try {
      const account = await (await api("/v1/account")).json();
      $("account").textContent = `${account.name}: ${account.available} credits available`;
      const [spec, operations] = await Promise.all([
        fetch("/openapi.json").then((r) => r.json()),
        paged("/v1/operations"),
      ]);
      state.spec = spec;
      state.operations = operations;
      $("operation").replaceChildren(...operations.map((op) => element("option", { value: op.name, textContent: op.name })));
      $("provider")?.remove();
      await renderForm();
      $("workbench").hidden = false;
    } catch (error) {
      state.key = "";
      $("account").textContent = error.problem ? `${error.problem.code || error.problem.status}: ${error.message}` : String(error);
    }
  }

  $("sign-in").addEventListener("submit", signIn);
  $("operation").addEventListener("change", () => {
    $("provider")?.remove();
    renderForm();
  });
  $("job-form").addEventListener("submit", runJob);
})();
