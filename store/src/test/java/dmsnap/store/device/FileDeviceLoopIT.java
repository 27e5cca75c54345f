package dmsnap.store.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dmsnap.store.testing.DeviceContract;
import dmsnap.store.testing.LoopDevices;
import dmsnap.store.testing.TempFiles;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.io.TempDir;

/**
 * The device contract on real block devices: a loop device with 512-byte sectors and one with
 * 4096-byte sectors ({@code losetup --sector-size 4096}). Needs root; elsewhere skipped with the
 * reason printed.
 */
class FileDeviceLoopIT {

    abstract static class LoopContract extends DeviceContract {
        @TempDir
        Path dir;

        private LoopDevices.Loop loop;

        abstract int sectorBytes();

        @Override
        protected Device openDevice(long sizeBytes) throws IOException {
            String why = LoopDevices.unavailableReason();
            if (why != null) {
                System.out.println("SKIPPED loop-device contract (" + sectorBytes() + "-byte sectors): " + why);
            }
            assumeTrue(why == null, why);
            loop = LoopDevices.attach(TempFiles.sparse(dir, "backing.img", sizeBytes), sectorBytes());
            FileDevice device = FileDevice.open(loop.device());
            System.out.println("loop-device contract on " + loop.device() + ": type="
                    + device.stat().type() + ", logical=" + device.logicalBlockBytes() + " O_DIRECT alignment="
                    + device.bufferAlignmentBytes());
            assertEquals(dmsnap.ffm.FileType.BLOCK_DEVICE, device.stat().type());
            assertEquals(sectorBytes(), device.logicalBlockBytes());
            return device;
        }

        @AfterEach
        void detach() throws IOException {
            if (loop != null) {
                device().close();
                loop.close();
            }
        }
    }

    @Nested
    class Exclusive {
        @TempDir
        Path dir;

        @org.junit.jupiter.api.Test
        void aHeldBlockDeviceIsBusyForASecondOpener() throws IOException {
            String why = LoopDevices.unavailableReason();
            assumeTrue(why == null, why);
            try (LoopDevices.Loop loop = LoopDevices.attach(TempFiles.sparse(dir, "held.img", 1 << 20), 512)) {
                try (FileDevice first = FileDevice.open(loop.device())) {
                    dmsnap.ffm.ErrnoException e = org.junit.jupiter.api.Assertions.assertThrows(
                            dmsnap.ffm.ErrnoException.class, () -> FileDevice.open(loop.device()));
                    assertEquals(
                            "open(path=" + loop.device() + ") failed: EBUSY (Device or resource busy): "
                                    + "another process holds it exclusively or it is mounted",
                            e.getMessage());
                    assertEquals(1 << 20, first.sizeBytes());
                }
            }
        }
    }

    @Nested
    class Ioctls {
        @TempDir
        Path dir;

        @org.junit.jupiter.api.Test
        void geometryDiscardAndZeroOutOnARealBlockDevice() throws IOException {
            String why = LoopDevices.unavailableReason();
            assumeTrue(why == null, why);
            try (LoopDevices.Loop loop = LoopDevices.attach(TempFiles.sparse(dir, "ioctl.img", 4 << 20), 4096);
                    dmsnap.ffm.NativeFile dev = dmsnap.ffm.NativeFile.open(
                            loop.device(), dmsnap.ffm.OpenFlag.READ_WRITE, dmsnap.ffm.OpenFlag.DIRECT);
                    java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                assertEquals(new dmsnap.ffm.BlockGeometry(4 << 20, 4096, 4096), dmsnap.ffm.BlockDevices.geometry(dev));
                assertEquals(dmsnap.ffm.FileType.BLOCK_DEVICE, dev.stat().type());
                assertEquals(7, dev.stat().rdevMajor(), "loop devices are major 7");
                java.lang.foreign.MemorySegment buf =
                        arena.allocate(64 << 10, 4096).fill((byte) 0x33);
                dev.write(0, buf);
                dmsnap.ffm.BlockDevices.zeroOut(dev, 0, 4096);
                dmsnap.ffm.BlockDevices.discard(dev, 8192, 8192);
                dev.read(0, buf);
                assertEquals(0, buf.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
                assertEquals(0x33, buf.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 4096));
                assertEquals(
                        0, buf.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 8192), "a loop discard reads back zeroes");
                IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(
                        IllegalArgumentException.class, () -> dev.write(512, buf.asSlice(0, 512)));
                assertTrue(
                        e.getMessage().contains("O_DIRECT needs offset and length aligned to 4096 bytes"),
                        e.getMessage());
                System.out.println("block ioctls on " + loop.device() + ": BLKGETSIZE64/BLKSSZGET/BLKPBSZGET/"
                        + "BLKZEROOUT/BLKDISCARD ok");
            }
        }
    }

    @Nested
    class Sectors512 extends LoopContract {
        @Override
        int sectorBytes() {
            return 512;
        }
    }

    @Nested
    class Sectors4096 extends LoopContract {
        @Override
        int sectorBytes() {
            return 4096;
        }
    }
}
