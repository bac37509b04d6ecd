// EnsinaLab dashboard: the caller's jobs in flight, live, with a kill button.
// The token comes from the address's fragment (#token=..., never sent to a server), stays in
// sessionStorage, and travels in the Authorization header only: the stream is read with fetch,
// not EventSource, which cannot send headers.
"use strict";

(() => {
  const TOKEN_KEY = "ensinalab.token";
  const RETRY_MS = 2000;
  const IN_FLIGHT = {
    briefing: ["pending", "processing", "generating_options"],
    video: ["queued", "processing"],
  };
  const KIND = { briefing: "Briefing", video: "Vídeo" };
  const STATUS = {
    pending: "na fila",
    queued: "na fila",
    processing: "em andamento",
    generating_options: "gerando opções",
    options_ready: "opções prontas",
    pending_approval: "aguardando aprovação",
    completed: "concluído",
    failed: "falhou",
    cancelled: "cancelado",
  };
  const REVOKE = {
    signalled: "a tarefa foi interrompida no worker",
    removed_from_queue: "a tarefa foi retirada da fila e não vai rodar",
    already_finished: "a tarefa já tinha terminado",
    no_worker_listening: "pendente: nenhum worker ouviu a ordem; ela será repetida",
    pending: "pendente: o servidor vai entregar a ordem assim que puder",
    no_task: "não havia tarefa a interromper",
  };

  const $ = (id) => document.getElementById(id);
  const jobs = new Map(); // "type:hash" -> job
  const titles = new Map(); // titles of jobs that left the list, for the outcome of their kill
  const answered = new Set(); // jobs whose cancel this page made and reported already
  let token = null;
  let lastEventId = null;
  let controller = null;
  let refreshing = false;

  function takeToken() {
    const hash = new URLSearchParams(location.hash.slice(1));
    const fromUrl = hash.get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function signIn(message) {
    if (controller) controller.abort();
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("board").hidden = true;
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    setConnection("Desconectado", false);
    $("token").focus();
  }

  function setConnection(text, live) {
    const el = $("connection");
    el.textContent = text;
    el.classList.toggle("live", live);
  }

  function say(text) {
    $("outcome").textContent = text;
  }

  function api(method, path) {
    return fetch(path, { method, headers: { Authorization: "Bearer " + token } });
  }

  const key = (type, hash) => type + ":" + hash;

  function forget(k) {
    const job = jobs.get(k);
    if (job) titles.set(k, job.title);
    jobs.delete(k);
  }

  function fromItem(t) {
    return {
      type: t.resource_type,
      hash: t.resource_id,
      taskId: t.task_id || "",
      title: t.title,
      status: t.status,
      progress: t.progress,
      startedAt: Date.now() - t.elapsed_time.seconds * 1000,
      stuck: t.elapsed_time.is_stuck,
    };
  }

  function applySnapshot(list) {
    jobs.clear();
    for (const t of list.tasks) jobs.set(key(t.resource_type, t.resource_id), fromItem(t));
    render();
  }

  // The active list merged in: jobs a change named before we knew their title, and the stuck
  // flag, which the server decides and no change carries.
  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const res = await api("GET", "/tasks/active");
      if (!res.ok) return;
      const list = await res.json();
      for (const t of list.tasks) {
        const k = key(t.resource_type, t.resource_id);
        const job = jobs.get(k);
        if (job) job.stuck = t.elapsed_time.is_stuck;
        else jobs.set(k, fromItem(t));
      }
      render();
    } finally {
      refreshing = false;
    }
  }

  function applyChange(c) {
    const k = key(c.resource_type, c.resource_id);
    const job = jobs.get(k);
    const inFlight = (IN_FLIGHT[c.resource_type] || []).includes(c.status);
    if (c.change === "revoke") {
      if (answered.has(k)) return;
      const title = job ? job.title : titles.get(k) || c.resource_id;
      say(`“${title}”: ${REVOKE[c.revoke] || c.revoke}.`);
      return;
    }
    if (!inFlight) {
      if (job) {
        forget(k);
        if (c.change !== "cancelled") say(`“${job.title}”: ${STATUS[c.status] || c.status}.`);
      }
      render();
      return;
    }
    if (!job) {
      refresh();
      return;
    }
    job.status = c.status;
    if (c.progress !== undefined) job.progress = c.progress;
    if (c.task_id) job.taskId = c.task_id;
    render();
  }

  function elapsed(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (h) return `${h}h ${m}m ${s % 60}s`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }

  function jobElement(k, job) {
    const li = document.createElement("li");
    li.className = "job";
    li.dataset.taskId = job.taskId;
    li.dataset.key = k;
    const title = document.createElement("span");
    title.className = "title";
    const meta = document.createElement("span");
    meta.className = "meta";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger";
    button.textContent = "Cancelar";
    button.addEventListener("click", () => cancelOne(k, button));
    li.append(title, meta, button);
    if (job.type === "video") {
      const bar = document.createElement("progress");
      bar.max = 1;
      li.append(bar);
    }
    return li;
  }

  function fill(li, job) {
    li.dataset.taskId = job.taskId;
    const title = li.querySelector(".title");
    title.textContent = job.title;
    if (job.stuck) {
      const mark = document.createElement("span");
      mark.className = "stuck";
      mark.textContent = "travado";
      title.append(mark);
    }
    li.querySelector(".meta").textContent =
      `${KIND[job.type] || job.type} · ${STATUS[job.status] || job.status} · ${elapsed(Date.now() - job.startedAt)}`;
    li.querySelector("button").setAttribute("aria-label", `Cancelar ${job.title}`);
    const bar = li.querySelector("progress");
    if (bar) {
      const p = typeof job.progress === "number" ? job.progress : 0;
      bar.value = p;
      bar.setAttribute("aria-label", `Progresso de ${job.title}`);
      bar.textContent = `${Math.round(p * 100)}%`;
    }
  }

  function render() {
    const list = $("jobs");
    const seen = new Set();
    for (const li of [...list.children]) {
      const job = jobs.get(li.dataset.key);
      if (!job) {
        // keep keyboard focus in the list when the focused job leaves it
        if (li.contains(document.activeElement)) $("cancel-all").focus();
        li.remove();
        continue;
      }
      seen.add(li.dataset.key);
      fill(li, job);
    }
    for (const [k, job] of jobs) {
      if (seen.has(k)) continue;
      const li = jobElement(k, job);
      fill(li, job);
      list.append(li);
    }
    $("empty").hidden = jobs.size > 0;
    $("count").textContent = jobs.size ? `(${jobs.size})` : "";
    $("cancel-all").disabled = jobs.size === 0;
  }

  async function cancelOne(k, button) {
    const job = jobs.get(k);
    if (!job) return;
    button.disabled = true;
    const path = job.type === "video"
      ? `/videos/${job.hash}/cancel`
      : `/briefings/${job.hash}/cancel-generation`;
    try {
      const res = await api("POST", path);
      const body = await res.json().catch(() => ({}));
      if (res.status === 401) return signIn("Sessão expirada: entre de novo.");
      if (!res.ok) {
        say(`Não foi possível cancelar “${job.title}”: ${body.detail || res.status}.`);
        button.disabled = false;
        return;
      }
      forget(k);
      answered.add(k);
      render();
      say(`“${job.title}” cancelado: ${REVOKE[body.revoke] || body.revoke || "ok"}.`);
    } catch {
      say(`Não foi possível cancelar “${job.title}”: sem conexão.`);
      button.disabled = false;
    }
  }

  async function cancelAll() {
    $("confirm").hidden = true;
    try {
      const res = await api("POST", "/tasks/cancel-all");
      const body = await res.json().catch(() => ({}));
      if (res.status === 401) return signIn("Sessão expirada: entre de novo.");
      if (!res.ok) return say(`Não foi possível cancelar tudo: ${body.detail || res.status}.`);
      const cancelled = new Set([
        ...body.cancelled.briefings.map((h) => key("briefing", h)),
        ...body.cancelled.videos.map((h) => key("video", h)),
      ]);
      for (const k of cancelled) {
        forget(k);
        answered.add(k);
      }
      render();
      const pending = body.revokes.filter((r) => !r.task_revoked).length;
      let text = `${body.cancelled.total} tarefa(s) cancelada(s).`;
      if (pending) text += ` ${pending} interrupção(ões) pendente(s): o servidor vai repetir a ordem.`;
      say(text);
    } catch {
      say("Não foi possível cancelar tudo: sem conexão.");
    }
    $("cancel-all").focus();
  }

  // One "event: ...\nid: ...\ndata: ..." block of the stream.
  function handleBlock(block) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    if (id !== null) lastEventId = id;
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (event === "snapshot") applySnapshot(payload);
    else if (event === "change") applyChange(payload);
  }

  async function follow() {
    while (token) {
      controller = new AbortController();
      const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      try {
        const res = await fetch("/tasks/events", { headers, signal: controller.signal });
        if (res.status === 401) return signIn("Token inválido ou expirado.");
        if (!res.ok) throw new Error(String(res.status));
        setConnection("Ao vivo", true);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (err) {
        if (!token) return;
      }
      setConnection("Reconectando…", false);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  function start() {
    $("signin").hidden = true;
    $("board").hidden = false;
    setConnection("Conectando…", false);
    render();
    follow();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      token = value;
      lastEventId = null;
      start();
    });
    $("cancel-all").addEventListener("click", () => {
      $("confirm").hidden = false;
      $("confirm-yes").focus();
    });
    $("confirm-yes").addEventListener("click", cancelAll);
    $("confirm-no").addEventListener("click", () => {
      $("confirm").hidden = true;
      $("cancel-all").focus();
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !$("confirm").hidden) $("confirm-no").click();
    });
    $("sign-out").addEventListener("click", () => signIn(""));
    setInterval(render, 1000);
    setInterval(() => token && refresh(), 30000);
    token = takeToken();
    if (token) start();
    else signIn("");
  });
})();
