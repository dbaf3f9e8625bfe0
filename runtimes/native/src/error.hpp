// The one internal error type: a status code for the C API plus a one-line message.
#pragma once
#include <stdexcept>
#include <string>

#include "edgegen.h"

namespace edgegen {

class Error : public std::runtime_error {
 public:
  Error(edgegen_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
  edgegen_status status() const { return status_; }

 private:
  edgegen_status status_;
};

[[noreturn]] inline void fail(edgegen_status status, const std::string &message) { throw Error(status, message); }

}  // namespace edgegen
