// Lapse dashboard uploads: drag and drop or the picker, one XHR per file (XHR, because fetch has no upload
// progress events), a real progress bar each, then the file list is refreshed in place.
"use strict";

(function () {
  const zone = document.querySelector("[data-dropzone]");
  if (!zone) return;
  const picker = document.querySelector("[data-picker]");
  const list = document.querySelector("[data-uploads]");
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const endpoint = zone.dataset.endpoint;
  const maxSize = Number(zone.dataset.maxSize);
  const parallel = 3;
  const queue = [];
  let running = 0;
  let finished = 0;

  function formatSize(bytes) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? bytes + " bytes" : value.toFixed(1) + " " + units[unit];
  }

  // Built with textContent only: a file name is data, never markup.
  function row(file) {
    const item = document.createElement("li");
    item.className = "upload";
    item.dataset.state = "queued";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = formatSize(file.size) + " · waiting";
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Upload progress of " + file.name);
    item.append(name, status, bar);
    list.append(item);
    return { item: item, status: status, bar: bar, size: file.size };
  }

  function settle(view, state, message) {
    view.item.dataset.state = state;
    view.status.textContent = message;
    if (state === "done") view.bar.value = 100;
  }

  function problem(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      return body.detail || body.title || "failed";
    } catch (error) {
      return "failed (" + xhr.status + ")";
    }
  }

  function send(file, view) {
    running += 1;
    view.item.dataset.state = "uploading";
    const xhr = new XMLHttpRequest();
    xhr.open("POST", endpoint);
    xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      const percent = Math.floor((event.loaded / event.total) * 100);
      // The last percent waits for the server's answer: the file counts once it is stored, not once sent.
      view.bar.value = Math.min(percent, 99);
      view.status.textContent = formatSize(view.size) + " · " + percent + "%";
    });
    xhr.addEventListener("load", function () {
      if (xhr.status === 201) settle(view, "done", formatSize(view.size) + " · uploaded");
      else if (xhr.status === 401) settle(view, "failed", "Your session ended: reload and sign in again.");
      else settle(view, "failed", problem(xhr));
      next();
    });
    xhr.addEventListener("error", function () {
      settle(view, "failed", "The connection broke off.");
      next();
    });
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  }

  function next() {
    running -= 1;
    finished += 1;
    pump();
    if (running === 0 && queue.length === 0) refresh();
  }

  function pump() {
    while (running < parallel && queue.length) {
      const job = queue.shift();
      send(job.file, job.view);
    }
  }

  // Swap in the server's fresh file list, parsed inertly: DOMParser never runs scripts.
  function refresh() {
    fetch(window.location.pathname, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("files");
        const current = document.getElementById("files");
        if (fresh && current) current.replaceWith(document.adoptNode(fresh));
        zone.dataset.refreshed = String(finished);
      })
      .catch(function () {
        window.location.reload();
      });
  }

  function add(files) {
    Array.prototype.forEach.call(files, function (file) {
      const view = row(file);
      if (file.size > maxSize) {
        settle(view, "failed", "Larger than the limit of " + formatSize(maxSize) + ".");
        return;
      }
      queue.push({ file: file, view: view });
    });
    pump();
  }

  picker.addEventListener("change", function () {
    add(picker.files);
    picker.value = "";
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("is-over");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.remove("is-over");
    });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
  });
  // The whole zone opens the picker, not only the "choose files" words.
  zone.addEventListener("click", function (event) {
    if (event.target.closest("label, input")) return;
    picker.click();
  });
  // Files picked while the page was still loading (this script is deferred) fired their "change" before anyone
  // listened; they are still on the picker, so take them now rather than drop them silently.
  if (picker.files.length) {
    add(picker.files);
    picker.value = "";
  }
})();
