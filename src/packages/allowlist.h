#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace codecell::packages {

// PEP 503 normalization: lowercase, every run of '-', '_' and '.' becomes one '-'.
std::string NormalizeName(const std::string& name);

// A bare package name as a request may give it: 1-100 of [A-Za-z0-9._-], starting and ending
// with a letter or digit (no version specifiers, paths, URLs or options).
bool ValidPackageName(const std::string& name);

// The distribution a requirement names: "scikit-learn>=1.2" -> "scikit-learn" (not normalized);
// "" when the requirement does not start with a valid name.
std::string RequirementName(const std::string& requirement);

// Approved packages: import name -> requirement (a distribution name, optionally with a version
// specifier that pins what pip may install, e.g. "plotly==5.18.0" or "numpy<2").
class Allowlist {
 public:
  struct Entry {
    std::string import_name;
    std::string requirement;
    std::string distribution;  // normalized
  };

  Allowlist() = default;
  explicit Allowlist(std::map<std::string, std::string> import_to_requirement);

  // The notebook stack a data user expects (see docs/packages.md).
  static Allowlist Default();

  // Adds or replaces entries; fails with a message naming the bad entry.
  std::string Add(const std::string& import_name, const std::string& requirement);

  // `name` as an import name (exact, case-sensitive: `PIL`, `sklearn`) or as a distribution name
  // (normalized: `Scikit_Learn` = `scikit-learn`).
  std::optional<Entry> Find(const std::string& name) const;
  // Entries whose import name is `import_name`'s top-level package.
  std::optional<Entry> FindImport(const std::string& import_name) const;

  const std::map<std::string, std::string>& entries() const { return import_to_requirement_; }
  // Every import name of a distribution (one distribution may provide several).
  std::vector<std::string> ImportNamesOf(const std::string& distribution) const;

 private:
  std::map<std::string, std::string> import_to_requirement_;
};

// The refusal of a name that is not approved; names the setting that approves packages.
std::string NotApprovedReason(const std::string& name);

// What a Python traceback says could not be imported: the last "ModuleNotFoundError: No module
// named 'x.y'" in `stderr` gives "x" (the top-level package); "" when there is none.
std::string MissingModule(const std::string& stderr_text);

}  // namespace codecell::packages
