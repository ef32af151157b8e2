#include "api/http_util.h"
#include "api/routes.h"
#include "base/log.h"
#include "base/user_id.h"

namespace codecell::api {

using nlohmann::json;

void AddPackageRoutes(httplib::Server& s, ServiceParts& p) {
  s.Get("/v1/packages", [&p](const httplib::Request&, httplib::Response& res) {
    JsonOk(res, 200, p.packages.List());
  });
  s.Post("/v1/packages", [&p](const httplib::Request& req, httplib::Response& res) {
    auto body = JsonObjectBody(req, res);
    if (!body) return;
    const json& j = *body;
    const json& names = j.contains("packages") ? j["packages"] : json();
    if (!names.is_array() || names.empty() || names.size() > exec::kMaxInstallPackages ||
        !std::all_of(names.begin(), names.end(), [](const json& e) { return e.is_string(); })) {
      return JsonError(res, 400, "bad_request",
                       "packages is required: a list of 1-50 package names");
    }
    std::string requester = "api";
    const bool names_user = j.contains("user_id") && !j["user_id"].is_null();
    if (names_user) {
      if (!j["user_id"].is_string() || !ValidUserId(j["user_id"].get<std::string>())) {
        return JsonError(res, 400, "bad_request", kUserIdRule);
      }
      requester = j["user_id"];
    }
    // A key bound to users installs for one of them; installs for the service are the operator's.
    if (!p.config.api_keys.empty() && !names_user) {
      const ApiKey* key = RequestKey(p.config, req);
      if (key == nullptr || !key->any_user()) {
        return ErrorAnswer(res, {ErrorKind::kForbidden,
                                 "this API key installs packages only for its users: name one in "
                                 "user_id"});
      }
    } else if (!AnswerUnlessActingFor(p.config, req, res, requester)) {
      return;
    }
    packages::InstallReport report =
        p.packages.Install(names.get<std::vector<std::string>>(), requester);
    LogJson({{"level", report.all_ok() ? "info" : "warning"},
             {"event", "packages_install"},
             {"requester", requester},
             {"packages", report.ToJson()["packages"]},
             {"seconds", report.seconds}});
    JsonOk(res, 200, report.ToJson());
  });
  s.Post("/v1/packages/refresh", [&p](const httplib::Request&, httplib::Response& res) {
    json out = p.packages.Refresh(/*force=*/true);
    LogJson({{"level", out.value("refreshed", false) ? "info" : "error"},
             {"event", "packages_refresh"},
             {"result", out}});
    JsonOk(res, 200, out);
  });
}

}  // namespace codecell::api
