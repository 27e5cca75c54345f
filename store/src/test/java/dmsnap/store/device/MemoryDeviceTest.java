package dmsnap.store.device;

import dmsnap.store.testing.DeviceContract;

class MemoryDeviceTest extends DeviceContract {
    @Override
    protected Device openDevice(long sizeBytes) {
        return new MemoryDevice("mem", sizeBytes);
    }
}
