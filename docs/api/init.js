// Renders the server's own /openapi.yaml with Swagger UI (docs/api/swagger-ui/, from npm's
// swagger-ui-dist). No online validator badge and no remote reference is fetched: the page's
// Content-Security-Policy allows this origin only.
window.ui = SwaggerUIBundle({
  url: "/openapi.yaml",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  // "Try it out" calls this server with the key given under "Authorize"; it is not kept.
  persistAuthorization: false,
  displayOperationId: true,
});
