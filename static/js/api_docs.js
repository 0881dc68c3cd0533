// /api/docs: Swagger UI from the swagger-ui-dist package; the settings come from django-ninja.
(function () {
  const body = document.body.dataset;
  const config = JSON.parse(document.getElementById("swagger-settings").textContent);
  config.dom_id = "#swagger-ui";
  config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset];
  if (body.apiCsrf && body.csrfToken) {
    // Session-authenticated calls from the page need Django's CSRF header.
    config.requestInterceptor = (req) => { req.headers["X-CSRFToken"] = body.csrfToken; return req; };
  }
  window.ui = SwaggerUIBundle(config);
})();
