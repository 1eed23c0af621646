// doctest's main, plus skip accounting: a test case that cannot run here
// (a sample clip not fetched, an instruction set this CPU lacks) calls
// DYDCA_SKIP(why) (test_util.h). When every test case that ran was skipped,
// the binary exits with 77, which ctest reports as "Not Run" (the tests are
// registered with SKIP_RETURN_CODE 77): a test that cannot run says so
// instead of passing.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "test_util.h"

namespace {

int g_ran = 0, g_skipped = 0;
bool g_current_skipped = false;

struct SkipListener final : doctest::IReporter {
  explicit SkipListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {
    ++g_ran;
    g_current_skipped = false;
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override { g_skipped += g_current_skipped; }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
REGISTER_LISTENER("dydca-skips", 1, SkipListener);

}  // namespace

namespace dydca::test {
void mark_skipped(const std::string& why) {
  g_current_skipped = true;
  std::fprintf(stderr, "SKIPPED: %s\n", why.c_str());
}
}  // namespace dydca::test

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (rc != 0 || context.shouldExit()) return rc;
  if (g_ran > 0 && g_skipped == g_ran) {
    std::fprintf(stderr, "all %d test case%s skipped\n", g_ran, g_ran == 1 ? "" : "s");
    return 77;
  }
  return rc;
}
