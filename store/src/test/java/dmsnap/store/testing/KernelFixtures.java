package dmsnap.store.testing;

import dmsnap.store.device.MemoryDevice;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * The kernel ground truth recorded in {@code shared/fixtures/kernel-cow} (copied into the store's
 * test resources under {@code kernel-cow/}): final images, their sha256 sums, and the decoded
 * COW dumps.
 */
public final class KernelFixtures {
    private static final String ROOT = "/kernel-cow/";
    private static final Pattern ENTRY = Pattern.compile("\\s*\\[(\\d+):(\\d+)] old_chunk=(\\d+) new_chunk=(\\d+)");

    private KernelFixtures() {}

    /** One exception as cowdump.txt lists it. */
    public record DumpedException(int area, int index, long oldChunk, long newChunk) {}

    /** A COW section of cowdump.txt. */
    public record CowDump(
            String image,
            long sizeBytes,
            String header,
            List<DumpedException> exceptions,
            String usage,
            String snapshotSha256) {}

    public static String text(String scenario, String file) {
        try (InputStream in = KernelFixtures.class.getResourceAsStream(ROOT + scenario + "/" + file)) {
            if (in == null) {
                throw new IllegalArgumentException("no fixture " + scenario + "/" + file);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The uncompressed bytes of {@code final/<image>.gz}. */
    public static byte[] image(String scenario, String image) {
        try (InputStream raw = KernelFixtures.class.getResourceAsStream(ROOT + scenario + "/final/" + image + ".gz")) {
            if (raw == null) {
                throw new IllegalArgumentException("no fixture image " + scenario + "/" + image);
            }
            try (GZIPInputStream in = new GZIPInputStream(raw)) {
                return in.readAllBytes();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A memory device holding a copy of an image. */
    public static MemoryDevice imageDevice(String scenario, String image) {
        byte[] bytes = image(scenario, image);
        MemoryDevice device = new MemoryDevice(scenario + "/" + image, bytes.length);
        device.write(0, MemorySegment.ofArray(bytes));
        return device;
    }

    /** sha256 per image from {@code final/SHA256SUMS}. */
    public static Map<String, String> sha256sums(String scenario) {
        Map<String, String> sums = new LinkedHashMap<>();
        for (String line : text(scenario, "final/SHA256SUMS").split("\n")) {
            if (!line.isBlank()) {
                String[] parts = line.trim().split("\\s+");
                sums.put(parts[1], parts[0]);
            }
        }
        return sums;
    }

    /** The persistent COW sections of {@code cowdump.txt}. */
    public static List<CowDump> cowDumps(String scenario) {
        List<CowDump> dumps = new ArrayList<>();
        String image = null;
        long size = 0;
        String header = null;
        String usage = null;
        List<DumpedException> exceptions = new ArrayList<>();
        for (String line : text(scenario, "cowdump.txt").split("\n")) {
            Matcher m;
            if (line.startsWith("cow ")) {
                String[] parts = line.split("[ :]+");
                image = parts[1];
                size = Long.parseLong(parts[2]);
                exceptions = new ArrayList<>();
            } else if (line.startsWith("header ")) {
                header = line.substring("header ".length());
            } else if ((m = ENTRY.matcher(line)).matches()) {
                exceptions.add(new DumpedException(
                        Integer.parseInt(m.group(1)),
                        Integer.parseInt(m.group(2)),
                        Long.parseLong(m.group(3)),
                        Long.parseLong(m.group(4))));
            } else if (line.startsWith("derived usage: ")) {
                usage = line.substring("derived usage: ".length()).replaceAll(" \\(.*", "");
            } else if (line.startsWith("snapshot view sha256 ") && image != null) {
                dumps.add(new CowDump(
                        image,
                        size,
                        header,
                        List.copyOf(exceptions),
                        usage,
                        line.substring("snapshot view sha256 ".length()).trim()));
                image = null;
            }
        }
        return dumps;
    }

    public static String sha256(MemorySegment bytes) {
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            digest.update(bytes.asByteBuffer());
            return HexFormat.of().formatHex(digest.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    public static String sha256(byte[] bytes) {
        return sha256(MemorySegment.ofArray(bytes));
    }
}
