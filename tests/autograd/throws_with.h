// A GoogleTest assertion for errors: passes when `f` throws E whose message contains `part`.
//   EXPECT_TRUE(throws_with<std::logic_error>([&] { y.backward(); }, "retain_graph"));
#pragma once

#include <exception>
#include <string>
#include <vector>

#include <gtest/gtest.h>

template <class E, class F>
::testing::AssertionResult throws_with(F&& f, const std::string& part) {
  try {
    f();
  } catch (const E& e) {
    if (std::string(e.what()).find(part) == std::string::npos)
      return ::testing::AssertionFailure()
             << "message \"" << e.what() << "\" lacks \"" << part << "\"";
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw the wrong type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// Passes when `f` throws E whose message contains every one of `parts` (an op's name, shapes,
// tensor names...).
template <class E, class F>
::testing::AssertionResult throws_with_all(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure()
               << "message \"" << msg << "\" does not mention \"" << p << "\"";
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw the wrong type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}
