// Small helpers shared by the GoogleTest files.
#pragma once

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

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

}  // namespace longnet::testing
