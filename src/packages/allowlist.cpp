#include "packages/allowlist.h"

#include <cctype>

namespace codecell::packages {
namespace {

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool IsNameChar(char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; }

bool ValidImportName(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  if (std::isdigit(static_cast<unsigned char>(name[0])) != 0) return false;
  for (char c : name) {
    if (!IsAlnum(c) && c != '_') return false;
  }
  return true;
}

// From the old bot's list (PRIOR_ART.md) plus what a notebook user reaches for; import names
// that differ from their distribution's are the point of the table.
constexpr std::pair<const char*, const char*> kDefaultAllowlist[] = {
    // data and science (numpy ... sklearn are Debian's; listed so that asking for them answers
    // "already installed")
    {"numpy", "numpy"},
    {"pandas", "pandas"},
    {"scipy", "scipy"},
    {"sklearn", "scikit-learn"},
    {"statsmodels", "statsmodels"},
    {"sympy", "sympy"},
    {"networkx", "networkx"},
    {"igraph", "igraph"},
    {"numba", "numba"},
    {"pyarrow", "pyarrow"},
    {"polars", "polars"},
    {"tabulate", "tabulate"},
    // machine learning
    {"xgboost", "xgboost"},
    {"lightgbm", "lightgbm"},
    {"catboost", "catboost"},
    {"tensorflow", "tensorflow"},
    {"keras", "keras"},
    {"torch", "torch"},
    // plotting
    {"matplotlib", "matplotlib"},
    {"seaborn", "seaborn"},
    {"plotly", "plotly"},
    {"bokeh", "bokeh"},
    {"altair", "altair"},
    {"holoviews", "holoviews"},
    {"wordcloud", "wordcloud"},
    // language
    {"nltk", "nltk"},
    {"spacy", "spacy"},
    {"gensim", "gensim"},
    {"textblob", "textblob"},
    // images
    {"PIL", "pillow"},
    {"imageio", "imageio"},
    {"skimage", "scikit-image"},
    {"cv2", "opencv-python-headless"},
    // files and formats
    {"openpyxl", "openpyxl"},
    {"xlrd", "xlrd"},
    {"xlsxwriter", "xlsxwriter"},
    {"xlwt", "xlwt"},
    {"yaml", "pyyaml"},
    {"toml", "toml"},
    {"jsonschema", "jsonschema"},
    {"bs4", "beautifulsoup4"},
    {"lxml", "lxml"},
    {"docx", "python-docx"},
    {"pptx", "python-pptx"},
    // dates and utilities
    {"dateutil", "python-dateutil"},
    {"pytz", "pytz"},
    {"arrow", "arrow"},
    {"pendulum", "pendulum"},
    {"tqdm", "tqdm"},
    {"rich", "rich"},
    {"progressbar", "progressbar2"},
    {"toolz", "toolz"},
    {"cytoolz", "cytoolz"},
    {"funcy", "funcy"},
    {"more_itertools", "more-itertools"},
};

}  // namespace

std::string NormalizeName(const std::string& name) {
  std::string out;
  bool in_separator = false;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      if (!in_separator) out.push_back('-');
      in_separator = true;
    } else {
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      in_separator = false;
    }
  }
  return out;
}

bool ValidPackageName(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  if (!IsAlnum(name.front()) || !IsAlnum(name.back())) return false;
  for (char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

std::string RequirementName(const std::string& requirement) {
  size_t end = 0;
  while (end < requirement.size() && IsNameChar(requirement[end])) ++end;
  std::string name = requirement.substr(0, end);
  if (!ValidPackageName(name)) return "";
  // What may follow the name: a version specifier or extras, nothing that is an URL or a path.
  for (size_t i = end; i < requirement.size(); ++i) {
    char c = requirement[i];
    if (!(IsNameChar(c) || c == ' ' || c == '=' || c == '<' || c == '>' || c == '!' || c == '~' ||
          c == ',' || c == '*' || c == '[' || c == ']' || c == '+')) {
      return "";
    }
  }
  return name;
}

Allowlist::Allowlist(std::map<std::string, std::string> import_to_requirement)
    : import_to_requirement_(std::move(import_to_requirement)) {}

Allowlist Allowlist::Default() {
  Allowlist list;
  for (const auto& [import_name, requirement] : kDefaultAllowlist) {
    list.import_to_requirement_[import_name] = requirement;
  }
  return list;
}

std::string Allowlist::Add(const std::string& import_name, const std::string& requirement) {
  if (!ValidImportName(import_name)) {
    return "'" + import_name + "' is not a valid import name (a Python identifier)";
  }
  if (RequirementName(requirement).empty()) {
    return "'" + requirement + "' (for " + import_name +
           ") is not a requirement: a distribution name, optionally followed by a version "
           "specifier such as ==1.2 or >=1,<2";
  }
  import_to_requirement_[import_name] = requirement;
  return "";
}

std::optional<Allowlist::Entry> Allowlist::Find(const std::string& name) const {
  if (auto it = import_to_requirement_.find(name); it != import_to_requirement_.end()) {
    return Entry{it->first, it->second, NormalizeName(RequirementName(it->second))};
  }
  const std::string wanted = NormalizeName(name);
  for (const auto& [import_name, requirement] : import_to_requirement_) {
    std::string distribution = NormalizeName(RequirementName(requirement));
    if (distribution == wanted) return Entry{import_name, requirement, distribution};
  }
  return std::nullopt;
}

std::optional<Allowlist::Entry> Allowlist::FindImport(const std::string& import_name) const {
  std::string top = import_name.substr(0, import_name.find('.'));
  if (auto it = import_to_requirement_.find(top); it != import_to_requirement_.end()) {
    return Entry{it->first, it->second, NormalizeName(RequirementName(it->second))};
  }
  return std::nullopt;
}

std::vector<std::string> Allowlist::ImportNamesOf(const std::string& distribution) const {
  std::vector<std::string> names;
  for (const auto& [import_name, requirement] : import_to_requirement_) {
    if (NormalizeName(RequirementName(requirement)) == distribution) names.push_back(import_name);
  }
  return names;
}

std::string NotApprovedReason(const std::string& name) {
  return "'" + name +
         "' is not an approved package: it is not in the allowlist (setting packages.allowlist "
         "in the config file, or CODECELL_PACKAGES_ALLOWLIST)";
}

std::string MissingModule(const std::string& stderr_text) {
  static const std::string kMarker = "ModuleNotFoundError: No module named '";
  size_t at = stderr_text.rfind(kMarker);
  if (at == std::string::npos) return "";
  size_t start = at + kMarker.size();
  size_t end = stderr_text.find('\'', start);
  if (end == std::string::npos) return "";
  std::string module = stderr_text.substr(start, end - start);
  std::string top = module.substr(0, module.find('.'));
  return ValidImportName(top) ? top : "";
}

}  // namespace codecell::packages
