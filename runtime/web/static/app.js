// flowlord dashboard: filters that apply themselves, and the backload form.
// Every value shown is set with textContent: nothing from the server becomes HTML here.
"use strict";

document.addEventListener("change", (event) => {
  const field = event.target;
  if (field.matches("[data-autosubmit]") && field.form) {
    if (field.name === "type") {  // a new type: its jobs differ
      const job = field.form.querySelector("select[name=job]");
      if (job) job.value = "";
    }
    field.form.submit();
  }
});

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function setupBackload() {
  const form = document.getElementById("backload");
  if (!form) return;
  const phases = JSON.parse(document.getElementById("phases").textContent);
  const phaseSelect = form.querySelector("#phase");
  const previewButton = form.querySelector("#preview");
  const executeButton = form.querySelector("#execute");
  const outcome = document.getElementById("outcome");
  const results = document.getElementById("results");
  const requestBox = document.getElementById("request-box");
  const metaFields = document.getElementById("meta-fields");
  let previewed = null;  // the request body the preview was made with

  const phase = () => phases[Number(phaseSelect.value)];
  const mode = () => form.querySelector("input[name=mode]:checked").value;

  function showPhase() {
    const p = phaseSelect.value === "" ? null : phase();
    document.getElementById("phase-details").hidden = !p;
    metaFields.replaceChildren();
    document.getElementById("meta-file-row").hidden = !(p && p.meta_file);
    if (p) {
      document.getElementById("template").textContent = p.template;
      document.getElementById("rule").textContent = p.rule || "(none)";
      document.getElementById("meta-file").value = p.meta_file;
      if (!p.meta_file) {
        for (const key of p.meta_keys) {
          const row = el("div", null, "row");
          const label = el("label", "meta " + key);
          const input = el("input");
          input.name = "meta:" + key;
          input.dataset.key = key;
          input.id = label.htmlFor = "meta-" + key;
          input.className = "wide";
          input.placeholder = "values, comma separated (one task each)";
          input.value = (p.meta[key] || []).join(",");
          row.append(label, input);
          metaFields.append(row);
        }
      }
    }
    changed();
  }

  function changed() {
    previewed = null;
    executeButton.disabled = true;
    const timeGiven = mode() === "at" ? form.at.value.trim() : (form.from.value.trim() || form.to.value.trim());
    previewButton.disabled = !(phaseSelect.value !== "" && timeGiven);
  }

  function body(execute) {
    const p = phase();
    const request = {Task: p.topic};
    if (p.job) request.Job = p.job;
    request.Workflow = p.workflow;
    if (mode() === "at") {
      request.At = form.at.value.trim();
    } else {
      if (form.from.value.trim()) request.From = form.from.value.trim();
      if (form.to.value.trim()) request.To = form.to.value.trim();
      request.By = form.by.value;
    }
    const meta = {};
    for (const input of metaFields.querySelectorAll("input[data-key]")) {
      const values = input.value.split(",").map((v) => v.trim()).filter((v) => v !== "");
      if (values.length) meta[input.dataset.key] = values;
    }
    if (Object.keys(meta).length) request.meta = meta;
    if (p.meta_file) {
      const file = form["meta-file"].value.trim();
      if (file && file !== p.meta_file) request["meta-file"] = file;
    }
    if (execute) request.Execute = true;
    return request;
  }

  function banner(kind, text) {
    outcome.replaceChildren(el("p", text, "banner " + kind));
  }

  async function send(execute) {
    const request = body(execute);
    document.getElementById("request").textContent = JSON.stringify(request, null, 2);
    requestBox.hidden = false;
    const headers = {"Content-Type": "application/json", "Accept": "application/json"};
    const token = form.querySelector("#token");
    if (token && token.value) headers.Authorization = "Bearer " + token.value;
    let reply, data;
    try {
      reply = await fetch("/backload", {method: "POST", headers, body: JSON.stringify(request)});
      const text = await reply.text();
      try { data = JSON.parse(text); } catch (e) { data = {error: text}; }
    } catch (error) {
      banner("bad", "Error: the request failed: " + error);
      return null;
    }
    if (!reply.ok) {
      banner("bad", "Error: " + (data.error || reply.statusText));
      results.hidden = true;
      return null;
    }
    return data;
  }

  function showTasks(data) {
    const rows = results.querySelector("tbody");
    rows.replaceChildren();
    (data.Tasks || []).forEach((task, index) => {
      const tr = el("tr");
      tr.append(el("td", index + 1, "num"), el("td", task.type + (task.job ? ":" + task.job : "")),
                el("td", task.info, "mono wrap"), el("td", task.meta || "", "mono wrap"));
      rows.append(tr);
    });
    results.hidden = !(data.Tasks || []).length;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    previewButton.disabled = true;
    const request = JSON.stringify(body(false));
    const data = await send(false);
    previewButton.disabled = false;
    if (!data) return;
    showTasks(data);
    const problems = (data.Problems || []).length ? " Problems: " + data.Problems.join("; ") : "";
    banner(data.Count ? "info" : "warn", data.Status + ". " + data.Count + " task" +
           (data.Count === 1 ? "" : "s") + " would be sent." + problems);
    previewed = data.Count ? request : null;
    executeButton.disabled = !previewed;
  });

  executeButton.addEventListener("click", async () => {
    if (!previewed || JSON.stringify(body(false)) !== previewed) { changed(); return; }
    const count = results.querySelectorAll("tbody tr").length;
    if (!window.confirm("Send " + count + " task" + (count === 1 ? "" : "s") + " now?")) return;
    executeButton.disabled = true;
    const data = await send(true);
    if (!data) return;
    showTasks(data);
    banner(data.Failed ? "warn" : "ok", "Done. " + data.Status + ". Sent " + data.Count + " task" +
           (data.Count === 1 ? "" : "s") + ".");
    previewed = null;
  });

  phaseSelect.addEventListener("change", showPhase);
  form.addEventListener("input", (event) => { if (event.target !== phaseSelect) changed(); });
  form.addEventListener("change", (event) => {
    if (event.target.name === "mode") {
      document.getElementById("at-row").hidden = mode() !== "at";
      document.getElementById("range-row").hidden = mode() !== "range";
    }
    if (event.target !== phaseSelect) changed();
  });
  form.addEventListener("reset", () => setTimeout(() => {
    showPhase();
    outcome.replaceChildren();
    results.hidden = true;
    requestBox.hidden = true;
    document.getElementById("at-row").hidden = false;
    document.getElementById("range-row").hidden = true;
  }));
  showPhase();
}

document.addEventListener("DOMContentLoaded", setupBackload);
