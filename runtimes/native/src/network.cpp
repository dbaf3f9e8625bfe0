// Defaults of the Network interface (network.hpp).
#include "error.hpp"
#include "network.hpp"

namespace edgegen {

void Network::run_all(const std::vector<HostTensor> &, int64_t, std::vector<OutTensor> &) {
  fail(EDGEGEN_ERR_UNSUPPORTED, "this backend runs only roles with fixed shapes; token models (a KV cache) run on "
                                "the openvino backend");
}

}  // namespace edgegen
