// EnsinaLab dashboard: the caller's jobs in flight, live, with a kill button.
// The token comes from the address's fragment (#token=..., never sent to a server), stays in
// sessionStorage, and travels in the Authorization header only: the stream is read with fetch,
// not EventSource, which cannot send headers.
// Which jobs are listed is the server's rule: a change's `listed` says it, the page keeps no
// status set of its own.
"use strict";

(() => {
  const TOKEN_KEY = "ensinalab.token";
  const HISTORY_KEY = "ensinalab.history";
  const HISTORY_MAX = 50;
  const RETRY_MS = 2000;
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
  // Why a job left the list; a timeout's words are the ones the server writes on the row.
  const CANCELLED = {
    user: "Cancelado pelo usuário",
    user_all: "Cancelado por “Cancelar tudo”",
    timeout: "Cancelado automaticamente: tempo limite excedido",
    revoked: "Cancelado fora do painel: a tarefa foi revogada",
  };
  const REVOKE = {
    claimed: "a tarefa ainda não tinha começado e não vai rodar",
    removed_from_queue: "a tarefa foi retirada da fila",
    signalled: "a ordem de interrupção foi enviada ao worker",
    killed: "a tarefa foi interrompida no worker",
    already_finished: "a tarefa já tinha terminado",
    finished_first: "a tarefa terminou antes da interrupção; o resultado será apagado",
    no_worker_listening: "pendente: nenhum worker ouviu a ordem; ela será repetida",
    pending: "pendente: o servidor vai entregar a ordem assim que puder",
    no_task: "não havia tarefa a interromper",
  };

  const $ = (id) => document.getElementById(id);
  const jobs = new Map(); // "type:hash" -> job
  const titles = new Map(); // titles of jobs that left the list, for the outcome of their kill
  const answered = new Set(); // jobs whose cancel this page made and reported already
  const noted = new Set(); // jobs whose leaving is in the history already
  let token = null;
  let lastEventId = null;
  let controller = null;
  let generation = 0; // the stream being followed; an older loop ends when it sees a newer one
  let refreshing = false;

  // The token of the address's fragment, if any, taken out of the address bar.
  function tokenFromUrl() {
    const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromUrl) history.replaceState(null, "", location.pathname + location.search);
    return fromUrl;
  }

  // Another token may be another user: what the page knew goes with the old one.
  function useToken(value) {
    if (value !== sessionStorage.getItem(TOKEN_KEY)) sessionStorage.removeItem(HISTORY_KEY);
    sessionStorage.setItem(TOKEN_KEY, value);
    token = value;
    lastEventId = null;
    jobs.clear();
    titles.clear();
    answered.clear();
    noted.clear();
    renderHistory();
  }

  function signIn(message) {
    if (controller) controller.abort();
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(HISTORY_KEY);
    renderHistory();
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
        // a list read before the job left must not bring it back
        if (noted.has(k)) continue;
        const job = jobs.get(k);
        if (job) job.stuck = t.elapsed_time.is_stuck;
        else jobs.set(k, fromItem(t));
      }
      render();
    } finally {
      refreshing = false;
    }
  }

  function loadHistory() {
    try {
      return JSON.parse(sessionStorage.getItem(HISTORY_KEY)) || [];
    } catch {
      return [];
    }
  }

  function renderHistory() {
    const notices = loadHistory();
    const list = $("notices");
    list.replaceChildren(
      ...notices.map((n) => {
        const li = document.createElement("li");
        li.className = `notice ${n.kind}`;
        li.dataset.key = n.key;
        const at = document.createElement("time");
        at.dateTime = n.at;
        at.textContent = new Date(n.at).toLocaleTimeString("pt-BR");
        li.append(at, " ", `“${n.title}”: ${n.text}.`);
        return li;
      }),
    );
    $("history").hidden = notices.length === 0;
  }

  function saveNotice(notice) {
    const notices = loadHistory().filter((n) => n.key !== notice.key);
    notices.unshift(notice);
    notices.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(notices.slice(0, HISTORY_MAX)));
    renderHistory();
  }

  function why(c) {
    if (c.change === "cancelled") return { kind: c.reason, text: CANCELLED[c.reason] || STATUS.cancelled };
    if (c.change === "failed") return { kind: "failed", text: STATUS.failed };
    return { kind: c.status, text: STATUS[c.status] || c.status };
  }

  // A job left the list: the history says why, once. A failure's message and the title of a
  // job the page never listed are read from the resource.
  async function noteLeaving(k, c, title) {
    if (noted.has(k)) return;
    noted.add(k);
    const { kind, text } = why(c);
    const notice = { key: k, at: c.at, kind, title: title || c.resource_id, text };
    saveNotice(notice);
    if (title && c.change !== "failed") return;
    const path = c.resource_type === "video"
      ? `/videos/${c.resource_id}/status`
      : `/briefings/${c.resource_id}`;
    try {
      const res = await api("GET", path);
      if (!res.ok) return;
      const row = await res.json();
      notice.title = row.title || notice.title;
      if (c.change === "failed" && row.error_message) notice.text = `${text}: ${row.error_message}`;
      saveNotice(notice);
    } catch {
      // the notice stands without the details
    }
  }

  function applyChange(c) {
    const k = key(c.resource_type, c.resource_id);
    const job = jobs.get(k);
    if (c.change === "revoke") {
      if (answered.has(k)) return;
      const title = job ? job.title : titles.get(k) || c.resource_id;
      say(`“${title}”: ${REVOKE[c.revoke] || c.revoke}.`);
      return;
    }
    if (c.change === "revoke_overdue") return;
    if (!c.listed) {
      const title = job ? job.title : titles.get(k);
      forget(k);
      noteLeaving(k, c, title);
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

  async function follow(gen) {
    while (token && gen === generation) {
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
        if (!token || gen !== generation) return;
      }
      setConnection("Reconectando…", false);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  function start() {
    if (controller) controller.abort();
    generation += 1;
    $("signin").hidden = true;
    $("board").hidden = false;
    setConnection("Conectando…", false);
    render();
    follow(generation);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      $("token").value = "";
      useToken(value);
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
    // A new #token= link opened in this tab changes only the fragment: no reload.
    window.addEventListener("hashchange", () => {
      const fresh = tokenFromUrl();
      if (!fresh || fresh === token) return;
      useToken(fresh);
      start();
    });
    const fromUrl = tokenFromUrl();
    if (fromUrl) useToken(fromUrl);
    token = sessionStorage.getItem(TOKEN_KEY);
    renderHistory();
    if (token) start();
    else signIn("");
  });
})();
