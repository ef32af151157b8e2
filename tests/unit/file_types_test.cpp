#include "exec/file_types.h"

#include <gtest/gtest.h>

#include <random>

#include "file_name_properties.h"

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

TEST(NumberedFileName, StaysWithin255Bytes) {
  // Two uploads of a 255-byte name: the second's copy in /mnt/data was 259 bytes (ENAMETOOLONG).
  const std::string name = std::string(251, 'a') + ".csv";
  const std::string second = NumberedFileName(SafeFileName(name), 2);
  EXPECT_EQ(second.size(), 255u);
  EXPECT_EQ(second.substr(second.size() - 8), " (2).csv");
  EXPECT_EQ(codecell::testing::FileNameViolation(second), "");
}

TEST(SafeFileName, WindowsDeviceNamesArePrefixed) {
  EXPECT_EQ(SafeFileName("con.csv"), "_con.csv");
  EXPECT_EQ(SafeFileName("LPT1"), "_LPT1");
  EXPECT_EQ(SafeFileName("nul .txt"), "_nul .txt");
  EXPECT_EQ(SafeFileName("console.csv"), "console.csv");
  EXPECT_EQ(SafeFileName("COM0.txt"), "COM0.txt");
}

// Random names built from the pieces that break naive sanitizers: dots, separators, controls,
// NUL, device names, valid and invalid UTF-8 (overlong, surrogates, truncated), long runs.
std::string RandomHostileName(std::mt19937_64& rng) {
  static const std::string kPieces[] = {".",
                                        "..",
                                        "/",
                                        "\\",
                                        std::string(1, '\0'),
                                        "\n",
                                        "\x7f",
                                        "\x1b",
                                        " ",
                                        "a",
                                        "Z",
                                        "csv",
                                        "con",
                                        "LPT9",
                                        "nul",
                                        ".png",
                                        "(2)",
                                        "\xC3\xA9",
                                        "\xE2\x82\xAC",
                                        "\xF0\x9F\x98\x80",
                                        "\xC0\xAF",
                                        "\xED\xA0\x80",
                                        "\xF4\x90\x80\x80",
                                        "\xE2\x82",
                                        "\xFF",
                                        "\x80"};
  std::uniform_int_distribution<size_t> count(0, 80), piece(0, std::size(kPieces) - 1);
  std::string name;
  for (size_t n = count(rng); n > 0; --n) name += kPieces[piece(rng)];
  if (rng() % 8 == 0) name += std::string(rng() % 600, rng() % 2 ? 'x' : '.');
  return name;
}

TEST(SafeFileName, PropertyNoInputGivesAnUnsafeNameAndItIsIdempotent) {
  std::mt19937_64 rng(20261203);
  for (int i = 0; i < 20000; ++i) {
    const std::string raw = RandomHostileName(rng);
    const std::string safe = SafeFileName(raw);
    ASSERT_EQ(codecell::testing::FileNameViolation(safe), "")
        << "from " << ::testing::PrintToString(raw);
    ASSERT_EQ(SafeFileName(safe), safe) << "not idempotent for " << ::testing::PrintToString(raw);
    for (int n : {2, 10, 99999}) {
      const std::string numbered = NumberedFileName(safe, n);
      ASSERT_EQ(codecell::testing::FileNameViolation(numbered), "")
          << n << " from " << ::testing::PrintToString(raw);
    }
  }
}

}  // namespace
}  // namespace codecell::exec
