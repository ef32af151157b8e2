#include "exec/file_types.h"

#include <gtest/gtest.h>

namespace codecell::exec {
namespace {

TEST(FileTypeForName, SortsByExtensionCaseInsensitively) {
  EXPECT_EQ(FileTypeForName("plot.PNG").kind, "image");
  EXPECT_EQ(FileTypeForName("plot.png").mime, "image/png");
  EXPECT_EQ(FileTypeForName("out/sales.csv").kind, "data");
  EXPECT_EQ(FileTypeForName("a.tar.gz").kind, "archive");
  EXPECT_EQ(FileTypeForName("r.json").kind, "structured");
  EXPECT_EQ(FileTypeForName("page.html").kind, "html");
  EXPECT_EQ(FileTypeForName("doc.pdf").mime, "application/pdf");
  EXPECT_EQ(FileTypeForName("script.py").kind, "code");
}

TEST(FileTypeForName, UnknownAndExtensionless) {
  EXPECT_EQ(FileTypeForName("README").kind, "other");
  EXPECT_EQ(FileTypeForName(".bashrc").kind, "other");
  EXPECT_EQ(FileTypeForName("x.weird").mime, "application/octet-stream");
}

TEST(SafeFileName, RemovesSeparatorsControlsAndDots) {
  EXPECT_EQ(SafeFileName("../../etc/passwd"), "_.._etc_passwd");
  EXPECT_EQ(SafeFileName("a\nb\x01"
                         "c"),
            "a_b_c");
  EXPECT_EQ(SafeFileName(".."), "file");
  EXPECT_EQ(SafeFileName(""), "file");
  EXPECT_EQ(SafeFileName("..hidden"), "hidden");
  EXPECT_EQ(SafeFileName("report.csv"), "report.csv");
}

TEST(SafeFileName, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(SafeFileName("\xFF\xFE"
                         "bad.txt"),
            "\xEF\xBF\xBD\xEF\xBF\xBD"
            "bad.txt");
  EXPECT_EQ(SafeFileName("caf\xC3\xA9.csv"), "caf\xC3\xA9.csv");  // valid UTF-8 kept
}

TEST(SafeFileName, BoundsLengthKeepingExtensionAndUtf8) {
  std::string longname;
  for (int i = 0; i < 200; ++i) longname += "\xC3\xA9";  // 400 bytes
  longname += ".csv";
  std::string safe = SafeFileName(longname);
  EXPECT_LE(safe.size(), 255u);
  EXPECT_EQ(safe.substr(safe.size() - 4), ".csv");
  EXPECT_NE(static_cast<unsigned char>(safe[safe.size() - 5]), 0xC3u);  // no half character
}

TEST(NumberedFileName, InsertsBeforeExtension) {
  EXPECT_EQ(NumberedFileName("data.csv", 2), "data (2).csv");
  EXPECT_EQ(NumberedFileName("data", 3), "data (3)");
}

}  // namespace
}  // namespace codecell::exec
