/* Read receipt: tell the portal a person looked at this page. It fires once per page load, and only
   when the page is actually visible, so a mail scanner that fetches the link (and no script) or a tab
   opened in the background and never looked at records nothing. */
(function () {
  var meta = document.querySelector('meta[name="portal-beacon"]');
  if (!meta) { return; }
  var url = meta.getAttribute("content");
  var sent = false;
  function send() {
    if (sent || document.visibilityState !== "visible") { return; }
    sent = true;
    if (navigator.sendBeacon && navigator.sendBeacon(url)) { return; }
    fetch(url, { method: "POST", keepalive: true, mode: "no-cors", credentials: "omit" });
  }
  document.addEventListener("visibilitychange", send);
  send();
})();
