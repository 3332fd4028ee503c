// Starts GraphiQL on the page that loaded this script. It is a file rather than an inline
// script so the page's Content-Security-Policy can forbid inline scripts.
//
// The GraphQL endpoint is the page's own path (GraphiQL is served by GET, queries by POST on
// the same URL). `?query=`, `?variables=` and `?headers=` prefill the editors, so a link can
// carry a query and its `{"authorization": "Bearer …"}` header.
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var props = {
    fetcher: GraphiQL.createFetcher({ url: window.location.pathname }),
    defaultEditorToolsVisibility: true,
    // Tokens typed into the headers editor stay in this tab, not in localStorage.
    shouldPersistHeaders: false,
  };
  ["query", "variables", "headers"].forEach(function (name) {
    var value = params.get(name);
    if (value !== null) {
      props[name] = value;
    }
  });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, props),
  );
})();
