package dmsnap.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dmsnap.store.testing.KernelFixtures;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code dmsnap cow format|dump|check|read} on the kernel's COW images. */
class CowCommandTest {
    @TempDir
    Path dir;

    private Path extract(String scenario, String image, String as) throws IOException {
        Path p = dir.resolve(as);
        Files.createDirectories(p.getParent());
        Files.write(p, KernelFixtures.image(scenario, image));
        return p;
    }

    private static String sha256(Path p) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    @ParameterizedTest(name = "{0}/{1}")
    @CsvSource({"basic, cow.img", "handover, cow.img", "overflow, cow2.img"})
    void dumpPrintsWhatTheFixtureRecords(String scenario, String image) throws IOException {
        Path cow = extract(scenario, image, scenario + "/" + image);
        CliRunner r = CliRunner.run("cow", "dump", cow.toString());
        assertEquals(0, r.exitCode(), r.err());
        String recorded = KernelFixtures.text(scenario, "cowdump.txt");
        String section = recorded.substring(recorded.indexOf("cow " + image + ":"));
        section = section.substring(
                        0,
                        section.indexOf("(sectors allocated/total metadata, as dmsetup status)")
                                + "(sectors allocated/total metadata, as dmsetup status)".length())
                + "\n";
        assertEquals(section, r.out());
    }

    @ParameterizedTest(name = "{0}/{1}")
    @CsvSource({"basic, cow.img, origin.img", "handover, cow.img, origin.img", "overflow, cow2.img, origin2.img"})
    void checkIsCleanAndReadReproducesTheSnapshotSha(String scenario, String image, String originImage)
            throws IOException {
        Path cow = extract(scenario, image, scenario + "/" + image);
        Path origin = extract(scenario, originImage, scenario + "/" + originImage);
        CliRunner check = CliRunner.run("cow", "check", cow.toString(), "--origin", origin.toString());
        assertEquals(0, check.exitCode(), check.out() + check.err());
        KernelFixtures.CowDump dump = KernelFixtures.cowDumps(scenario).stream()
                .filter(d -> d.image().equals(image))
                .findFirst()
                .orElseThrow();
        assertTrue(
                check.out()
                        .contains(": clean: " + dump.header() + ", "
                                + dump.exceptions().size() + " exceptions in 1 area, usage " + dump.usage()),
                check.out());

        Path out = dir.resolve(scenario + "-view.raw");
        CliRunner read = CliRunner.run(
                "cow", "read", "--origin", origin.toString(), "--cow", cow.toString(), "--out", out.toString());
        assertEquals(0, read.exitCode(), read.err());
        assertTrue(read.out().contains("snapshot view sha256 " + dump.snapshotSha256()), read.out());
        assertEquals(dump.snapshotSha256(), sha256(out));
        CliRunner again = CliRunner.run(
                "cow", "read", "--origin", origin.toString(), "--cow", cow.toString(), "--out", out.toString());
        assertEquals(ExitCodes.FAILED, again.exitCode());
        assertEquals("dmsnap: " + out + " exists; use --force to overwrite it\n", again.err());
    }

    @Test
    void checkNamesTheDamageAndExitsNonZero() throws IOException {
        Path cow = extract("basic", "cow.img", "damaged/cow.img");
        try (RandomAccessFile f = new RandomAccessFile(cow.toFile(), "rw")) {
            f.seek(4096 + 5 * 16 + 8);
            f.write(new byte[] {2, 1, 0, 0, 0, 0, 0, 0}); // entry 5 -> COW chunk 258 (area 1)
        }
        String before = sha256(cow);
        CliRunner r = CliRunner.run("cow", "check", cow.toString());
        assertEquals(CowCheckCommand.PROBLEMS, r.exitCode());
        // Worded as the table load refuses it (PersistentExceptionStoreTest#entriesPointingPastTheEndOrIntoMetadata).
        assertEquals(
                cow + ": exception 5 of area 0 (byte 4176) points at COW chunk 258, which holds metadata\n" + cow
                        + ": 1 problem\n",
                r.out());
        assertEquals(before, sha256(cow), "check writes nothing");
        CliRunner read = CliRunner.run(
                "cow",
                "read",
                "--origin",
                cow.toString(),
                "--cow",
                cow.toString(),
                "--out",
                dir.resolve("x.raw").toString());
        assertEquals(ExitCodes.FAILED, read.exitCode());
    }

    /**
     * Found by CowImageFuzzTest (seed -6713343864973483144, case 18): without --origin, check
     * called a COW clean whose origin chunk the loader refuses (negative as a signed number, or
     * beyond what the exception table holds).
     */
    @ParameterizedTest
    @CsvSource({"9223372036854775808", "18446744073709551615", "8796093022208"})
    void checkFlagsOriginChunksTheLoaderRefusesWithoutAnOrigin(String oldChunk) throws IOException {
        Path cow = extract("basic", "cow.img", "range/" + oldChunk + ".img");
        try (RandomAccessFile f = new RandomAccessFile(cow.toFile(), "rw")) {
            f.seek(4096 + 4 * 16);
            f.writeLong(Long.reverseBytes(Long.parseUnsignedLong(oldChunk)));
        }
        CliRunner r = CliRunner.run("cow", "check", cow.toString());
        assertEquals(CowCheckCommand.PROBLEMS, r.exitCode(), r.out());
        // Worded as the table load refuses it: a negative origin chunk by the walk of the areas, a
        // larger one than the exception table holds by its loading sink.
        String refusal = Long.parseUnsignedLong(oldChunk) < 0
                ? " names origin chunk " + oldChunk + ", out of range"
                : ": origin chunk " + oldChunk + " (COW chunk 6) is beyond what the exception table holds (origin"
                        + " chunks up to 8796093022207, COW chunks up to 1099511627775)";
        assertEquals(cow + ": exception 4 of area 0 (byte 4160)" + refusal + "\n" + cow + ": 1 problem\n", r.out());
    }

    @Test
    void checkOfAnUnreadableCowSaysSo() {
        CliRunner r = CliRunner.run("cow", "check", dir.resolve("missing.img").toString());
        assertEquals(CowCheckCommand.UNREADABLE, r.exitCode());
        assertEquals(
                "dmsnap: cow check " + dir.resolve("missing.img") + ": could not read: open(path="
                        + dir.resolve("missing.img") + ") failed: ENOENT (No such file or directory)\n",
                r.err());
    }

    @Test
    void checkReportsOriginChunksPastTheOrigin() throws IOException {
        Path cow = extract("basic", "cow.img", "o/cow.img");
        Path small = dir.resolve("o/small-origin.img");
        try (RandomAccessFile f = new RandomAccessFile(small.toFile(), "rw")) {
            f.setLength(1 << 20); // 256 chunks: chunks 1000 and 2047 are past it
        }
        CliRunner r = CliRunner.run("cow", "check", cow.toString(), "--origin", small.toString());
        assertEquals(CowCheckCommand.PROBLEMS, r.exitCode());
        assertTrue(
                r.out()
                        .contains(
                                "exception 9 of area 0 (byte 4240) names origin chunk 2047, past the end of the origin (256 chunks)"),
                r.out());
    }

    @Test
    void formatWritesTheKernelsFreshCowAndRefusesToOverwrite() throws IOException {
        Path cow = dir.resolve("fresh.img");
        CliRunner r = CliRunner.run("cow", "format", cow.toString(), "--chunk-size", "8", "--size", "4M");
        assertEquals(0, r.exitCode(), r.err());
        assertEquals("formatted " + cow + ": chunk size 8, 4194304 bytes, usage 16/8192 16\n", r.out());
        byte[] kernel = KernelFixtures.image("basic", "cow.img");
        byte[] ours = Files.readAllBytes(cow);
        assertArrayEquals(
                java.util.Arrays.copyOf(kernel, 4096),
                java.util.Arrays.copyOf(ours, 4096),
                "the header chunk equals the kernel's");
        assertTrue(java.util.stream.IntStream.range(4096, ours.length).allMatch(i -> ours[i] == 0), "the rest is zero");

        CliRunner again = CliRunner.run("cow", "format", cow.toString(), "--chunk-size", "16");
        assertEquals(ExitCodes.FAILED, again.exitCode());
        assertEquals(
                "dmsnap: " + cow + " already holds a COW (magic=0x70416e53 valid=1 version=1 chunk_size=8); "
                        + "use --force to overwrite it\n",
                again.err());
        CliRunner forced = CliRunner.run("cow", "format", cow.toString(), "--chunk-size", "16", "--force");
        assertEquals(0, forced.exitCode(), forced.err());
        assertTrue(CliRunner.run("cow", "dump", cow.toString()).out().contains("chunk_size=16"));

        CliRunner bad =
                CliRunner.run("cow", "format", dir.resolve("b.img").toString(), "--chunk-size", "12", "--size", "1M");
        assertEquals("dmsnap: --chunk-size 12: Chunk size is not a power of 2\n", bad.err());
    }

    @Test
    void formatCanMakeAThickCowWhoseHeaderIsTheKernelsToo() throws Exception {
        Path cow = dir.resolve("thick.img");
        CliRunner r = CliRunner.run(
                "cow", "format", cow.toString(), "--chunk-size", "8", "--size", "4M", "--preallocation", "full");
        assertEquals(0, r.exitCode(), r.err());
        byte[] ours = Files.readAllBytes(cow);
        assertArrayEquals(
                java.util.Arrays.copyOf(KernelFixtures.image("basic", "cow.img"), 4096),
                java.util.Arrays.copyOf(ours, 4096));
        assertEquals(4194304L, CowPreallocationTest.allocatedBytes(cow), "every block allocated");

        CliRunner bad = CliRunner.run(
                "cow",
                "format",
                dir.resolve("t2.img").toString(),
                "--chunk-size",
                "8",
                "--size",
                "1M",
                "--preallocation",
                "thick");
        assertEquals("dmsnap: --preallocation thick: expected off, falloc or full\n", bad.err());
        assertTrue(!Files.exists(dir.resolve("t2.img")));
    }

    @Test
    void dumpJsonHasTheExceptionList() throws IOException {
        Path cow = extract("basic", "cow.img", "j/cow.img");
        CliRunner r = CliRunner.run("cow", "dump", cow.toString(), "--json");
        assertEquals(0, r.exitCode(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals(8, json.get("header").get("chunkSize").asInt());
        assertEquals(11, json.get("exceptions").asInt());
        assertEquals(
                2047,
                json.get("areas")
                        .get(0)
                        .get("exceptions")
                        .get(9)
                        .get("oldChunk")
                        .asLong());
        assertEquals("104/8192 16", json.get("usage").asText());
    }

    @Test
    void aCowAnotherOpenHoldsIsBusyExitFour() throws IOException {
        Path cow = dir.resolve("held.cow");
        Files.write(cow, new byte[1 << 20]);
        try (var held = dmsnap.store.device.FileDevice.open(cow)) {
            CliRunner r = CliRunner.run("cow", "format", cow.toString(), "--chunk-size", "8");
            assertEquals(ExitCodes.BUSY, r.exitCode(), r.err());
            assertTrue(
                    r.err().startsWith("dmsnap: flock(path=" + cow + ") failed: EBUSY (Device or resource busy)"),
                    r.err());
        }
    }
}
