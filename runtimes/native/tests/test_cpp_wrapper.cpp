// The header-only RAII wrapper (edgegen.hpp).
#include "edgegen.hpp"

#include "helpers.hpp"

using namespace testing_edgegen;

TEST(CppWrapper, ThrowsWithStatusAndMessage) {
  try {
    edgegen::Bundle b("/nonexistent/bundle");
    FAIL() << "no exception";
  } catch (const edgegen::Exception &e) {
    EXPECT_EQ(e.status(), EDGEGEN_ERR_NOT_FOUND);
    EXPECT_NE(std::string(e.what()).find("bundle not found"), std::string::npos);
  }
}

TEST(CppWrapper, SampleMoveAndKeys) {
  REQUIRE_TEST_BUNDLE();
  edgegen::Bundle a(test_bundle());
  const auto keys = a.plan_keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "ddim-50"), keys.end());
  edgegen::SampleParams p;
  p.n = 2;
  p.label = 1;
  edgegen_stats st;
  const auto x = a.sample(p, &st);
  EXPECT_EQ(x.size(), 2u * 256u);
  edgegen::Bundle b = std::move(a);  // a no longer owns the handle
  EXPECT_EQ(a.get(), nullptr);
  EXPECT_EQ(b.sample(p), x);
  p.n = 0;
  EXPECT_THROW(b.sample(p), edgegen::Exception);
}
