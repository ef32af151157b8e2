#include "api/http_util.h"
#include "api/routes.h"

namespace codecell::api {

void AddStatusRoutes(httplib::Server& s, ServiceParts& p) {
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    JsonOk(res, 200, {{"status", "ok"}});
  });
  s.Get("/metrics", [&p](const httplib::Request&, httplib::Response& res) {
    store::Usage usage = p.store.TotalLiveUsage(files::NowMillis());
    res.set_content(
        p.metrics.Render({p.executions.queued(), p.executions.running(), p.config.workers,
                          usage.files, usage.bytes, p.packages.stats(), p.mcp_sessions.size()}),
        "text/plain; version=0.0.4");
  });
  s.Get("/v1/status",
        [&p](const httplib::Request&, httplib::Response& res) { JsonOk(res, 200, p.status()); });
  s.Post("/v1/cleanup", [&p](const httplib::Request&, httplib::Response& res) {
    JsonOk(res, 200, p.maintenance.RunCleanup());
  });
}

}  // namespace codecell::api
