// The process's fault-injection settings (see fault_injection.h).
#include "longnet/train/fault_injection.h"

namespace longnet {

FaultInjection& fault_injection() {
  static FaultInjection f;
  return f;
}

}  // namespace longnet
