// Submits the page's one form at once: the SAML HTTP-POST binding's
// AuthnRequest to the identity provider (a script file, not inline, so the
// Content-Security-Policy can forbid inline scripts).
document.addEventListener("DOMContentLoaded", function () {
  var f = document.getElementById("autopost");
  if (f) { f.submit(); }
});
