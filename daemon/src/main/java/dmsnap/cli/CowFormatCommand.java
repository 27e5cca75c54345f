package dmsnap.cli;

import dmsnap.store.ChunkSize;
import dmsnap.store.ExceptionStore.LoadResult;
import dmsnap.store.device.FileDevice;
import dmsnap.store.persistent.CowInspector;
import dmsnap.store.persistent.PersistentExceptionStore;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code dmsnap cow format}: writes a fresh persistent COW, exactly as the kernel's first load does. */
@Command(
        name = "format",
        description = {
            "Write a fresh persistent COW header and an empty exception area, as the kernel does",
            "when it first loads a zeroed COW. Refuses a device that already holds a COW unless --force."
        },
        footer = {"", "Example:", "  ./dmsnap cow format /img/cow --chunk-size 8 --size 64M"})
final class CowFormatCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "PATH", description = "COW file or block device.")
    Path path;

    @Option(
            names = "--chunk-size",
            required = true,
            paramLabel = "SECTORS",
            description = "Chunk size in 512-byte sectors (a power of two, e.g. 8 = 4 KiB).")
    long chunkSectors;

    @Option(
            names = "--size",
            paramLabel = "SIZE",
            description = "Create the file with this size if it does not exist (e.g. 64M, 1G).")
    String size;

    @Option(
            names = "--preallocation",
            paramLabel = "off|falloc|full",
            defaultValue = "off",
            description = "How a file created with --size gets its bytes: off = sparse (default), falloc = reserved, "
                    + "full = zeroes written now (as snapshot create).")
    String preallocation;

    @Option(names = "--force", description = "Overwrite an existing COW header.")
    boolean force;

    @Override
    public Integer call() throws IOException {
        String reason = ChunkSize.invalidReason(chunkSectors, 512, 512);
        if (reason != null) {
            throw new IllegalArgumentException("--chunk-size " + chunkSectors + ": " + reason);
        }
        CowPreallocation how = CowPreallocation.parse(preallocation);
        if (!Files.exists(path)) {
            if (size == null) {
                throw new IllegalArgumentException(path + " does not exist; give --size to create it");
            }
            how.grow(path, 0, Sizes.parseBytes(size), "preallocating " + path.getFileName());
        } else if (size != null) {
            throw new IllegalArgumentException(path + " exists already; --size only creates a new file");
        }
        try (FileDevice cow = FileDevice.open(path)) {
            String blockReason =
                    ChunkSize.invalidReason(chunkSectors, cow.logicalBlockBytes(), cow.logicalBlockBytes());
            if (blockReason != null) {
                throw new IllegalArgumentException("--chunk-size " + chunkSectors + " on " + path + ": " + blockReason);
            }
            CowInspector.Report existing = CowInspector.inspect(cow, 512, -1);
            if (existing.header() != null && existing.header().magic() != 0) {
                if (!force) {
                    throw new IllegalArgumentException(
                            path + " already holds a COW (" + existing.header() + "); use --force to overwrite it");
                }
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment zero =
                            arena.allocate(cow.logicalBlockBytes(), Math.max(4096, cow.bufferAlignmentBytes()));
                    cow.write(0, zero);
                }
            }
            try (PersistentExceptionStore store =
                    new PersistentExceptionStore(cow, new ChunkSize(chunkSectors), false, 512)) {
                if (store.load((o, n) -> {}) != LoadResult.VALID) {
                    throw new IOException(path + ": formatting failed");
                }
                spec.commandLine()
                        .getOut()
                        .println("formatted " + path + ": chunk size " + chunkSectors + ", " + cow.sizeBytes()
                                + " bytes, usage " + store.usage().statusString());
            }
        }
        return ExitCodes.OK;
    }
}
