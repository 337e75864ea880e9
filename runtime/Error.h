// The one error type of cnnc's runtime and generated libraries: its message
// names the file, tensor or argument at fault.
#ifndef CNNC_RUNTIME_ERROR_H
#define CNNC_RUNTIME_ERROR_H

#include <stdexcept>

namespace cnnc {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cnnc

#endif  // CNNC_RUNTIME_ERROR_H
