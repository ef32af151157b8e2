#include "sandbox/spec_wire.h"

#include <cstdint>
#include <limits>

namespace codecell::sandbox {
namespace {

using nlohmann::json;

json BindsToJson(const std::vector<RootfsPlan::Bind>& binds) {
  json out = json::array();
  for (const auto& b : binds) out.push_back({b.source, b.target, b.is_dir, b.writable});
  return out;
}

std::vector<RootfsPlan::Bind> BindsFromJson(const json& j) {
  std::vector<RootfsPlan::Bind> out;
  for (const auto& b : j) out.push_back({b.at(0), b.at(1), b.at(2), b.size() > 3 && b.at(3)});
  return out;
}

json SymlinksToJson(const std::vector<RootfsPlan::Symlink>& links) {
  json out = json::array();
  for (const auto& l : links) out.push_back({l.link_text, l.path});
  return out;
}

std::vector<RootfsPlan::Symlink> SymlinksFromJson(const json& j) {
  std::vector<RootfsPlan::Symlink> out;
  for (const auto& l : j) out.push_back({l.at(0), l.at(1)});
  return out;
}

json FilesToJson(const std::vector<RootfsPlan::File>& files) {
  json out = json::array();
  for (const auto& f : files) out.push_back({f.path, f.content});
  return out;
}

std::vector<RootfsPlan::File> FilesFromJson(const json& j) {
  std::vector<RootfsPlan::File> out;
  for (const auto& f : j) out.push_back({f.at(0), f.at(1)});
  return out;
}

// An unsigned integer that fits T. nlohmann's own conversion of a float (9e105) or a negative
// number to an unsigned type is undefined behaviour (found by tests/fuzz/fuzz_spec_wire).
template <typename T>
T Unsigned(const json& j) {
  if (!j.is_number_unsigned()) throw json::type_error::create(302, "not an unsigned integer", &j);
  const auto value = j.get<uint64_t>();
  if (value > std::numeric_limits<T>::max()) {
    throw json::out_of_range::create(406, "number out of range", &j);
  }
  return static_cast<T>(value);
}

}  // namespace

json SpecToJson(const SandboxSpec& spec) {
  const RootfsPlan& p = spec.rootfs;
  json seeds = json::array();
  for (const auto& s : p.tmp_seed_files) seeds.push_back({s.source, s.path});
  json plan = {{"root", p.root},
               {"dirs", p.dirs},
               {"binds", BindsToJson(p.binds)},
               {"symlinks", SymlinksToJson(p.symlinks)},
               {"files", FilesToJson(p.files)},
               {"proc_path", p.proc_path},
               {"dev_path", p.dev_path},
               {"shm_path", p.shm_path},
               {"tmp_path", p.tmp_path},
               {"data_path", p.data_path},
               {"meta_path", p.meta_path},
               {"devices", BindsToJson(p.devices)},
               {"dev_symlinks", SymlinksToJson(p.dev_symlinks)},
               {"meta_files", FilesToJson(p.meta_files)},
               {"meta_options", p.meta_options},
               {"overlay_dir", p.overlay_dir},
               {"overlay_options", p.overlay_options},
               {"tmp_options", p.tmp_options},
               {"shm_options", p.shm_options},
               {"tmp_dirs", p.tmp_dirs},
               {"tmp_seed_files", seeds},
               {"owner_uid", p.owner_uid},
               {"owner_gid", p.owner_gid}};
  const Rlimits& r = spec.rlimits;
  return {{"rootfs", plan},
          {"hostname", spec.hostname},
          {"uid", spec.uid},
          {"gid", spec.gid},
          {"rlimits",
           {{"processes", r.processes},
            {"cpu_seconds", r.cpu_seconds},
            {"file_size_bytes", r.file_size_bytes},
            {"open_files", r.open_files},
            {"address_space_bytes", r.address_space_bytes}}}};
}

Status SpecFromJson(const json& j, SandboxSpec& spec) {
  try {
    const json& p = j.at("rootfs");
    RootfsPlan& plan = spec.rootfs;
    plan.root = p.at("root");
    plan.dirs = p.at("dirs").get<std::vector<std::string>>();
    plan.binds = BindsFromJson(p.at("binds"));
    plan.symlinks = SymlinksFromJson(p.at("symlinks"));
    plan.files = FilesFromJson(p.at("files"));
    plan.proc_path = p.at("proc_path");
    plan.dev_path = p.at("dev_path");
    plan.shm_path = p.at("shm_path");
    plan.tmp_path = p.at("tmp_path");
    plan.data_path = p.at("data_path");
    plan.meta_path = p.at("meta_path");
    plan.devices = BindsFromJson(p.at("devices"));
    plan.dev_symlinks = SymlinksFromJson(p.at("dev_symlinks"));
    plan.meta_files = FilesFromJson(p.at("meta_files"));
    plan.meta_options = p.at("meta_options");
    plan.overlay_dir = p.at("overlay_dir");
    plan.overlay_options = p.at("overlay_options");
    plan.tmp_options = p.at("tmp_options");
    plan.shm_options = p.at("shm_options");
    plan.tmp_dirs = p.at("tmp_dirs").get<std::vector<std::string>>();
    plan.tmp_seed_files.clear();
    for (const auto& s : p.at("tmp_seed_files")) plan.tmp_seed_files.push_back({s.at(0), s.at(1)});
    plan.owner_uid = Unsigned<uid_t>(p.at("owner_uid"));
    plan.owner_gid = Unsigned<gid_t>(p.at("owner_gid"));
    spec.hostname = j.at("hostname");
    spec.uid = Unsigned<uid_t>(j.at("uid"));
    spec.gid = Unsigned<gid_t>(j.at("gid"));
    const json& r = j.at("rlimits");
    spec.rlimits.processes = Unsigned<rlim_t>(r.at("processes"));
    spec.rlimits.cpu_seconds = Unsigned<rlim_t>(r.at("cpu_seconds"));
    spec.rlimits.file_size_bytes = Unsigned<rlim_t>(r.at("file_size_bytes"));
    spec.rlimits.open_files = Unsigned<rlim_t>(r.at("open_files"));
    spec.rlimits.address_space_bytes = Unsigned<rlim_t>(r.at("address_space_bytes"));
  } catch (const json::exception& e) {
    return Status::Fail(std::string("malformed sandbox spec: ") + e.what());
  }
  return OkStatus();
}

}  // namespace codecell::sandbox
