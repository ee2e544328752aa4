#include "agent/virtio_fs/device.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/iov.h"
#include "common/log.h"

namespace coherefs::agent::virtio_fs {

absl::Status ValidateOptions(const DeviceOptions& options) {
  if (options.tag.empty() || options.tag.size() > kTagSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("virtio-fs tag must be 1..", kTagSize, " bytes"));
  }
  // The vring index in SET_VRING_KICK/CALL is 8 bits: 256 queues at most.
  if (options.num_request_queues == 0 || options.num_request_queues > 255) {
    return absl::InvalidArgumentError("num_request_queues must be 1..255");
  }
  if (options.thread_pool_size > 1024) {
    return absl::InvalidArgumentError("thread_pool_size must be 0..1024");
  }
  return absl::OkStatus();
}

VirtioFsDevice::VirtioFsDevice(DeviceOptions options,
                               std::unique_ptr<fuse::RequestHandler> handler,
                               std::shared_ptr<CurrentHandler> current)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      current_(std::move(current)) {
  if (current_ != nullptr) current_->Set(handler_.get());
}

VirtioFsDevice::~VirtioFsDevice() {
  if (current_ != nullptr) current_->Set(nullptr);
}

uint32_t VirtioFsDevice::NumQueues() const {
  return 1 + options_.num_request_queues;
}

std::string VirtioFsDevice::Config() const {
  std::string config(kTagSize + sizeof(uint32_t), '\0');
  std::memcpy(config.data(), options_.tag.data(), options_.tag.size());
  uint32_t n = options_.num_request_queues;  // little-endian host
  std::memcpy(config.data() + kTagSize, &n, sizeof(n));
  return config;
}

uint32_t VirtioFsDevice::WorkersForQueue(uint32_t queue) const {
  return queue == kHiprioQueue ? 0 : options_.thread_pool_size;
}

uint32_t VirtioFsDevice::ProcessChain(uint32_t queue,
                                      const vhost_user::Chain& chain) {
  (void)queue;  // FUSE requests carry their opcode; the queue adds nothing
  if (handler_ == nullptr) return 0;  // a factory that failed: no replies
  IovReader in(chain.readable);
  IovWriter out(chain.writable);
  size_t written = handler_->HandleRequest(in, out);
  // The handler cannot write more than the writer's capacity; the clamp in
  // the queue runner is the backstop.
  return static_cast<uint32_t>(written);
}

void VirtioFsDevice::Reset() {
  if (shut_down_) return;
  shut_down_ = true;
  if (handler_ != nullptr) handler_->Shutdown();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const std::string& socket_path, DeviceOptions options,
    HandlerFactory factory, vhost_user::SessionKeeper* keeper) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  auto current = std::make_shared<CurrentHandler>();
  auto device_factory = [options, factory = std::move(factory), current]()
      -> std::unique_ptr<vhost_user::Device> {
    return std::make_unique<VirtioFsDevice>(options, factory(), current);
  };
  auto listener = vhost_user::Listener::Start(socket_path, device_factory, keeper);
  if (!listener.ok()) return listener.status();
  LOG_INFO("virtio-fs device ready")
      .Kv("tag", options.tag)
      .Kv("request_queues", options.num_request_queues)
      .Kv("thread_pool_size", options.thread_pool_size);
  return std::unique_ptr<Server>(
      new Server(std::move(*listener), std::move(current)));
}

}  // namespace coherefs::agent::virtio_fs
