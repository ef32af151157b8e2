#include <fcntl.h>
#include <unistd.h>

#include "api/http_util.h"
#include "api/render.h"
#include "api/routes.h"
#include "base/user_id.h"

namespace codecell::api {

using nlohmann::json;

namespace {

// One multipart upload, streamed to disk part by part: a user_id field and one file part.
struct MultipartUpload {
  std::string user_id;
  std::unique_ptr<files::FileManager::Upload> upload;
  std::optional<Error> failure;  // refused while reading (the body is left unread)
  bool malformed = false;
};

MultipartUpload ReadMultipartUpload(files::FileManager& files,
                                    const httplib::ContentReader& reader) {
  MultipartUpload out;
  int user_id_fields = 0, file_parts = 0;
  std::string part_name;
  bool read = reader(
      [&](const httplib::MultipartFormData& part) {
        part_name = part.name;
        if (part.name == "user_id" && ++user_id_fields > 1) {
          out.failure = Error::BadInput("send one user_id field");
          return false;
        }
        if (part.name == "file") {
          if (++file_parts > 1) {
            out.failure = Error::BadInput("send exactly one file part");
            return false;
          }
          auto begun = files.BeginUpload(part.filename.empty() ? "file" : part.filename);
          if (!begun.ok()) {
            out.failure = begun.failure;
            return false;
          }
          out.upload = std::move(*begun.value);
        }
        return true;
      },
      [&](const char* data, size_t size) {
        if (part_name == "file") {
          if (!out.upload->Write(data, size)) {
            out.failure = out.upload->failure();
            return false;
          }
        } else if (part_name == "user_id") {
          if (out.user_id.size() + size > 256) return false;
          out.user_id.append(data, size);
        }
        return true;
      });
  out.malformed = !read && !out.failure;
  return out;
}

void Upload(ServiceParts& p, const httplib::Request& req, httplib::Response& res,
            const httplib::ContentReader& reader) {
  if (!req.is_multipart_form_data()) {
    return JsonError(res, 400, "bad_request",
                     "upload with multipart/form-data: a user_id field and a file part");
  }
  const uint64_t limit = p.config.files.max_upload_bytes;
  // The multipart framing adds a little; a body far beyond the limit is refused unread.
  if (auto declared = ContentLength(req); declared && *declared > limit + (64u << 10)) {
    p.metrics.CountUpload(false);
    return JsonError(
        res, 413, "too_large",
        "the upload is larger than the limit of " + std::to_string(limit >> 20) + " MiB");
  }
  MultipartUpload upload = ReadMultipartUpload(p.files, reader);
  if (upload.failure) {
    p.metrics.CountUpload(false);
    return ErrorAnswer(res, *upload.failure);
  }
  if (upload.malformed) {
    return JsonError(res, 400, "bad_request",
                     "malformed multipart body (or a part header over 8 KiB, such as a very long "
                     "file name)");
  }
  if (!ValidUserId(upload.user_id)) return JsonError(res, 400, "bad_request", kUserIdRule);
  if (!AnswerUnlessActingFor(p.config, req, res, upload.user_id)) return;
  if (!upload.upload) {
    return JsonError(res, 400, "bad_request", "the upload has no part named 'file'");
  }
  auto stored = upload.upload->Commit(upload.user_id);
  p.metrics.CountUpload(stored.ok());
  if (!stored.ok()) return ErrorAnswer(res, stored.failure);
  JsonOk(res, 201, UploadAnswer(*stored.value, *upload.upload));
}

void Download(ServiceParts& p, const httplib::Request& req, httplib::Response& res) {
  auto user = QueryUser(p.config, req, res);
  if (!user) return;
  auto r = p.files.Get(*user, req.matches[1]);
  if (!r) return JsonError(res, 404, "not_found", "no such file");
  // Opened now: a delete during the download unlinks the name, not these bytes.
  int fd = ::open(p.files.PathOf(*r).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return JsonError(res, 404, "not_found", "the file's bytes are gone");
  res.set_header("Content-Disposition", ContentDisposition(r->filename));
  res.set_content_provider(
      r->file_size, r->mime_type,
      [fd](size_t offset, size_t length, httplib::DataSink& sink) {
        char buffer[65536];
        ssize_t n =
            ::pread(fd, buffer, std::min(length, sizeof buffer), static_cast<off_t>(offset));
        if (n <= 0) return false;
        return sink.write(buffer, static_cast<size_t>(n));
      },
      [fd](bool) { ::close(fd); });
}

}  // namespace

void AddFileRoutes(httplib::Server& s, ServiceParts& p) {
  s.Post("/v1/files", [&p](const httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader& reader) { Upload(p, req, res, reader); });
  s.Get("/v1/files", [&p](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(p.config, req, res);
    if (!user) return;
    JsonOk(res, 200, {{"files", FileObjects(p.files.List(*user))}});
  });
  s.Delete("/v1/files", [&p](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(p.config, req, res);
    if (!user) return;
    JsonOk(res, 200, {{"deleted_count", p.files.DeleteAll(*user)}});
  });
  s.Get(R"(/v1/files/([^/]+))", [&p](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(p.config, req, res);
    if (!user) return;
    auto r = p.files.Get(*user, req.matches[1]);
    if (!r) return JsonError(res, 404, "not_found", "no such file");
    JsonOk(res, 200, FileObject(*r));
  });
  s.Delete(R"(/v1/files/([^/]+))", [&p](const httplib::Request& req, httplib::Response& res) {
    auto user = QueryUser(p.config, req, res);
    if (!user) return;
    if (!p.files.Delete(*user, req.matches[1])) {
      return JsonError(res, 404, "not_found", "no such file");
    }
    res.status = 204;
  });
  s.Get(R"(/v1/files/([^/]+)/content)",
        [&p](const httplib::Request& req, httplib::Response& res) { Download(p, req, res); });
}

}  // namespace codecell::api
