// The new-job form: a folder path or uploaded files. More files than the server accepts in one request
// are refused here, before a long upload, with the fix (zip them); the bar shows the upload's progress.
function jobForm(source, maxFiles) {
  return {
    source, maxFiles, count: 0, sent: 0,
    get tooMany() { return this.source === "upload" && this.count > this.maxFiles; },
    picked(files) { this.count = files.length; },
    progress(detail) { this.sent = detail.total ? Math.round((detail.loaded * 100) / detail.total) : 0; },
  };
}
