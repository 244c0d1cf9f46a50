// Small helpers shared by the GoogleTest files.
#pragma once

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

namespace longnet::testing {

// f must throw (c10::Error, or std::exception such as OptionsError) with `expect` in the message.
inline void expect_error(const std::function<void()>& f, const std::string& expect) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << expect << "'";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
  }
}

// fn must throw E (or a type derived from it; another type propagates) with every needle in its
// message; returns the message ("" and a failure when nothing is thrown).
template <typename E = std::exception>
std::string expect_throw(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no exception; expected one mentioning '" << needles.front() << "'";
  return "";
}

}  // namespace longnet::testing
