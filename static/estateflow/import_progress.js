// Live progress of an import job: polls the job's JSON endpoint and updates the page in place.
(function () {
  const root = document.querySelector("[data-progress-url]");
  if (!root || root.dataset.terminal === "1") return;
  const terminal = new Set(["completed", "completed_with_errors", "failed", "cancelled", "rolled_back"]);
  const set = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };
  const fmt = (n) => (n === null || n === undefined ? "?" : Number(n).toLocaleString());
  async function poll() {
    let data;
    try {
      const response = await fetch(root.dataset.progressUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(response.status);
      data = await response.json();
    } catch (e) {
      setTimeout(poll, 3000);
      return;
    }
    document.getElementById("ef-bar-fill").style.width = data.percent + "%";
    document.getElementById("ef-progressbar").setAttribute("aria-valuenow", data.percent);
    set("ef-percent", data.percent);
    set("ef-status", data.status);
    set("ef-processed", fmt(data.processed_rows));
    set("ef-total", fmt(data.total_rows));
    set("ef-chunks", data.chunks_done + "/" + data.chunks_total);
    set("ef-created", fmt(data.created));
    set("ef-updated", fmt(data.updated));
    set("ef-unchanged", fmt(data.unchanged));
    set("ef-failed", fmt(data.failed));
    set("ef-warned", fmt(data.warned));
    set("ef-rate", data.rows_per_second ? fmt(Math.round(data.rows_per_second)) + " rows/s" : "");
    set("ef-eta", data.eta_seconds !== null ? "ETA " + Math.round(data.eta_seconds) + " s" : "");
    if (data.rollback) {
      set("ef-rb-status", data.rollback.status);
      set("ef-rb-chunks", data.rollback.chunks_done + "/" + data.rollback.chunks_total);
      set("ef-rb-deleted", fmt(data.rollback.deleted));
      set("ef-rb-restored", fmt(data.rollback.restored));
    }
    const rollbackRunning = data.rollback && !data.rollback.finished;
    if (terminal.has(data.status) && !rollbackRunning && data.status !== "rolling_back") {
      // Reload once to show the final error list and the actions of an ended job.
      setTimeout(() => window.location.reload(), 300);
      return;
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 500);
})();
