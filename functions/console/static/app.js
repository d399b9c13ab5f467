// Scanline console: the gateway's HTTP contract in a page. Tokens live in this closure
// only (never in web storage or a cookie); every text from the server goes
// into the page as text (textContent), never as markup.
"use strict";

(() => {
  const API = "/function";
  const FINISHED = new Set(["done", "failed"]);
  const WAIT = 20; // seconds per ?wait= call
  const LOW_CONFIDENCE = 0.6;
  const SVG = "http://www.w3.org/2000/svg";
  const session = { access: null, refresh: null, email: null, renewal: null };
  const pending = { email: null, password: null };
  const uploads = new Map(); // job id -> the File the user chose (drawn under its boxes)
  let shown = null; // the job on display

  const $ = (selector) => document.querySelector(selector);

  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  function say(text, isError = false) {
    const line = $("#message");
    line.textContent = text;
    line.className = isError ? "error" : "";
  }

  function view(name) {
    for (const section of document.querySelectorAll("[data-view]")) {
      section.hidden = section.id !== `view-${name}`;
    }
  }

  // --- calls -------------------------------------------------------------------------
  async function call(method, path, { json, form, body, auth = false, raw = false } = {}) {
    const send = async () => {
      const headers = {};
      let payload = body;
      if (json !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(json); }
      if (form !== undefined) { payload = new URLSearchParams(form); }
      if (auth) { headers.Authorization = `Bearer ${session.access}`; }
      return fetch(API + path, { method, headers, body: payload, credentials: "omit" });
    };
    let response = await send();
    if (auth && response.status === 401 && session.refresh && body === undefined) {
      await renew();
      response = await send();
    }
    if (!response.ok) { throw await failure(response); }
    if (raw) { return response; }
    return response.status === 204 ? null : response.json();
  }

  async function failure(response) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      if (problem.title) { message = `${problem.title}: ${problem.detail || ""}`; }
      else if (problem.error) { message = `${problem.error}: ${problem.error_description || ""}`; }
    } catch (ignored) { /* not JSON: the status line says it */ }
    if (response.status === 429 && response.headers.get("Retry-After")) {
      message += ` (try again in ${response.headers.get("Retry-After")} s)`;
    }
    return new ApiError(message, response.status);
  }

  // --- the session ---------------------------------------------------------------------
  function keep(tokens, email) {
    session.access = tokens.access_token;
    session.refresh = tokens.refresh_token;
    session.email = email;
    clearTimeout(session.renewal);
    const renewIn = Math.max(5, tokens.expires_in - 30) * 1000;
    session.renewal = setTimeout(() => renew().catch(ended), renewIn);
  }

  async function logIn(email, password) {
    keep(await call("POST", "/token", { form: { grant_type: "password", username: email, password } }), email);
    $("#who-email").textContent = email;
    $("#who").hidden = false;
    view("work");
    await listJobs();
  }

  async function renew() {
    try {
      keep(await call("POST", "/token", { form: { grant_type: "refresh_token", refresh_token: session.refresh } }),
           session.email);
    } catch (error) {
      forget();
      throw error;
    }
  }

  function forget() {
    clearTimeout(session.renewal);
    Object.assign(session, { access: null, refresh: null, email: null, renewal: null });
    uploads.clear();
    shown = null;
    $("#who").hidden = true;
    $("#job").hidden = true;
    $("#jobs tbody").replaceChildren();
    view("welcome");
  }

  function ended(error) { say(`Your session ended (${error.message}); log in again.`, true); }

  async function logOut() {
    const token = session.refresh;
    forget();
    if (token) { await call("POST", "/token/revoke", { form: { token, token_type_hint: "refresh_token" } }); }
    say("Logged out.");
  }

  // --- sign-up -------------------------------------------------------------------------
  async function signUp(form) {
    const data = new FormData(form);
    const email = data.get("email");
    await call("POST", "/register", { json: { name: data.get("name"), email, password: data.get("password") } });
    Object.assign(pending, { email, password: data.get("password") });
    form.reset();
    $("#verify-email").textContent = email;
    view("verify");
    say(`A code is on its way to ${email}.`);
  }

  async function verify(form) {
    // The password stays in this page's memory between the two steps, and no longer.
    const { email, password } = pending;
    await call("POST", "/verify-otp", { json: { email, otp: new FormData(form).get("code"), password } });
    form.reset();
    Object.assign(pending, { email: null, password: null });
    await logIn(email, password);
    say(`Verified: welcome, ${email}.`);
  }

  async function resend() {
    await call("POST", "/issue-otp", { json: { email: pending.email } });
    say(`A new code is on its way to ${pending.email}.`);
  }

  // --- jobs ----------------------------------------------------------------------------
  async function upload(file) {
    const form = new FormData();
    const languages = $("#languages").value.trim();
    if (languages) { form.append("languages", languages); }
    form.append("file", file, file.name);
    say(`Uploading ${file.name}…`);
    const job = await call("POST", "/ocr-jobs", { body: form, auth: true });
    uploads.set(job.job_id, file);
    say(`${file.name}: job ${job.job_id} queued.`);
    await listJobs();
    await watch(job.job_id);
  }

  async function watch(jobId) {
    let job = await call("GET", `/ocr-jobs/${jobId}`, { auth: true });
    showJob(job);
    while (!FINISHED.has(job.status) && shown === jobId) {
      job = await call("GET", `/ocr-jobs/${jobId}?wait=${WAIT}`, { auth: true });
      showJob(job);
    }
    if (shown === jobId) { say(`Job ${jobId} is ${job.status}.`, job.status === "failed"); }
    await listJobs();
  }

  function showJob(job) {
    shown = job.job_id;
    $("#job").hidden = false;
    $("#job-id").textContent = job.job_id;
    const status = $("#job-status");
    status.textContent = job.status;
    status.className = `status ${job.status}`;
    $("#job-error").hidden = !job.error;
    $("#job-error").textContent = job.error || "";
    $("#job-result").hidden = job.status !== "done";
    if (job.status === "done") {
      $("#job-text").textContent = job.text || "";
      drawPages(job);
    }
  }

  function drawPages(job) {
    const file = uploads.get(job.job_id);
    const image = file && file.type.startsWith("image/") && file.type !== "image/tiff" ? file : null;
    const pages = (job.pages || []).map((page) => drawPage(page, image && page.page === 1 ? image : null));
    $("#pages").replaceChildren(...pages);
  }

  // One page: the user's own image where the browser can show it, else a blank sheet of
  // the page's size; over it an SVG in the page's pixel coordinates, one box per word.
  // The boxes are in the page as read, upright: a page that was turned (``angle``, the
  // clockwise turn undone before reading) has its image turned back the same way inside
  // the SVG, so that words and boxes meet.
  function drawPage(page, image) {
    const figure = document.createElement("figure");
    figure.className = "page";
    figure.dataset.page = page.page;
    const turned = image && page.angle % 360 !== 0;
    if (image && !turned) {
      const img = document.createElement("img");
      img.src = URL.createObjectURL(image);
      img.alt = `page ${page.page}`;
      figure.append(img);
    } else {
      const sheet = document.createElement("div");
      sheet.className = "sheet";
      sheet.style.aspectRatio = `${page.width} / ${page.height}`;
      figure.append(sheet);
    }
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${page.width} ${page.height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    if (turned) { svg.append(uprightImage(page, image)); }
    for (const line of page.lines) {
      for (const word of line.words) { svg.append(box(word, !image)); }
    }
    figure.append(svg);
    return figure;
  }

  // The uploaded image, as it was before the page was turned upright, placed in the
  // upright page's coordinates: turned counter-clockwise by ``angle`` (SVG turns clockwise).
  function uprightImage(page, image) {
    const quarter = page.angle === 90 || page.angle === 270;
    const [width, height] = quarter ? [page.height, page.width] : [page.width, page.height];
    const moves = { 90: `translate(0 ${width}) rotate(-90)`,
                    180: `translate(${width} ${height}) rotate(180)`,
                    270: `translate(${height} 0) rotate(90)` };
    const picture = document.createElementNS(SVG, "image");
    picture.setAttribute("href", URL.createObjectURL(image));
    picture.setAttribute("width", width);
    picture.setAttribute("height", height);
    picture.setAttribute("preserveAspectRatio", "none");
    picture.setAttribute("transform", moves[page.angle] || "");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `page ${page.page}, turned ${page.angle}° to be read`;
    picture.append(title);
    return picture;
  }

  function box(word, withText) {
    const xs = word.box.map((point) => point[0]);
    const ys = word.box.map((point) => point[1]);
    const [x, y] = [Math.min(...xs), Math.min(...ys)];
    const [width, height] = [Math.max(...xs) - x, Math.max(...ys) - y];
    const group = document.createElementNS(SVG, "g");
    const rect = document.createElementNS(SVG, "rect");
    for (const [name, value] of Object.entries({ x, y, width, height })) { rect.setAttribute(name, value); }
    const confidence = word.confidence === null ? null : Math.round(word.confidence * 100);
    if (confidence !== null && word.confidence < LOW_CONFIDENCE) { rect.classList.add("low"); }
    rect.dataset.word = word.text;
    const title = document.createElementNS(SVG, "title");
    title.textContent = confidence === null ? word.text : `${word.text} (confidence ${confidence} %)`;
    rect.append(title);
    group.append(rect);
    if (withText) { // a blank sheet: the words themselves, where they were read
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", x);
      text.setAttribute("y", y + height * 0.8);
      text.setAttribute("font-size", height * 0.8);
      text.textContent = word.text;
      group.append(text);
    }
    return group;
  }

  async function download(kind) {
    const jobId = shown;
    const response = await call("GET", `/ocr-jobs/${jobId}/${kind}`, { auth: true, raw: true });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${jobId}.${{ text: "txt", hocr: "hocr.html", pdf: "pdf" }[kind]}`;
    document.body.append(link);
    link.click();
    link.remove();
  }

  async function listJobs() {
    const listing = await call("GET", "/ocr-jobs?limit=50", { auth: true });
    const rows = listing.jobs.map((job) => {
      const row = document.createElement("tr");
      row.dataset.job = job.job_id;
      const id = document.createElement("code");
      id.textContent = job.job_id;
      const cells = [id, job.status, new Date(job.created_at).toLocaleString()].map((content) => {
        const cell = document.createElement("td");
        cell.append(content);
        return cell;
      });
      const actions = document.createElement("td");
      for (const [label, action] of [["Open", () => watch(job.job_id)], ["Delete", () => remove(job.job_id)]]) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = label;
        button.dataset.action = label.toLowerCase();
        button.addEventListener("click", () => action().catch(report));
        actions.append(button);
      }
      row.append(...cells, actions);
      return row;
    });
    if (rows.length === 0) {
      const row = document.createElement("tr");
      const cell = document.createElement("td");
      cell.colSpan = 4;
      cell.textContent = "No jobs yet: drop a document above.";
      row.append(cell);
      rows.push(row);
    }
    $("#jobs tbody").replaceChildren(...rows);
  }

  async function remove(jobId) {
    if (!window.confirm(`Delete job ${jobId} with its document and results?`)) { return; }
    await call("DELETE", `/ocr-jobs/${jobId}`, { auth: true });
    uploads.delete(jobId);
    if (shown === jobId) { shown = null; $("#job").hidden = true; }
    say(`Job ${jobId} deleted.`);
    await listJobs();
  }

  // --- wiring --------------------------------------------------------------------------
  function report(error) {
    if (error instanceof ApiError && error.status === 401 && !session.refresh) { forget(); }
    say(error.message, true);
  }

  function onSubmit(selector, action) {
    $(selector).addEventListener("submit", (event) => {
      event.preventDefault();
      action(event.target).catch(report);
    });
  }

  function uploadAll(files) {
    (async () => { for (const file of files) { await upload(file); } })().catch(report);
  }

  document.addEventListener("DOMContentLoaded", () => {
    onSubmit("#signup-form", signUp);
    onSubmit("#verify-form", verify);
    onSubmit("#login-form", async (form) => {
      const data = new FormData(form);
      await logIn(data.get("email"), data.get("password"));
      form.reset();
      say("");
    });
    $("#upload-form").addEventListener("submit", (event) => event.preventDefault());
    $("#resend").addEventListener("click", () => resend().catch(report));
    $("#logout").addEventListener("click", () => logOut().catch(report));
    $("#refresh-jobs").addEventListener("click", () => listJobs().catch(report));
    $("#file").addEventListener("change", (event) => {
      uploadAll([...event.target.files]);
      event.target.value = "";
    });
    const drop = $("#drop");
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      uploadAll([...event.dataTransfer.files]);
    });
    for (const button of document.querySelectorAll("[data-download]")) {
      button.addEventListener("click", () => download(button.dataset.download).catch(report));
    }
    view("welcome");
  });
})();
