package dmsnap.store.persistent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.store.ChunkSize;
import dmsnap.store.CorruptStoreException;
import dmsnap.store.ExceptionTable;
import dmsnap.store.device.MemoryDevice;
import dmsnap.store.testing.KernelFixtures;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The table load and {@code cow check} ({@link CowInspector}) word the same damage alike: the
 * load refuses with the sentence cow check prints (located as the load locates it; what the
 * exception table's loading sink refuses carries the entry's location in front).
 */
class CowDamageTest {
    /**
     * The kernel's basic COW (chunk 8, 1024 chunks, 11 exceptions in area 0) with one field of
     * one entry of area 0 changed.
     */
    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "5 | new | 258 | | exception 5 of area 0 (byte 4176) points at COW chunk 258, which holds metadata",
                "3 | new | 1024 | | exception 3 of area 0 (byte 4144) points at COW chunk 1024, past the end of the COW (1024 chunks)",
                "3 | new | -1 | | exception 3 of area 0 (byte 4144) points at COW chunk 18446744073709551615, past the end of the COW (1024 chunks)",
                "6 | new | 3 | | exception 6 of area 0 (byte 4192) points at COW chunk 3, which an earlier exception uses too",
                "4 | old | -1 | | exception 4 of area 0 (byte 4160) names origin chunk 18446744073709551615, out of range",
                "4 | old | 8796093022208 | exception 4 of area 0 (byte 4160): | origin chunk 8796093022208 (COW chunk 6) is beyond what the exception table holds (origin chunks up to 8796093022207, COW chunks up to 1099511627775)",
                "4 | old | 0 | exception 4 of area 0 (byte 4160): | origin chunk 0 has a second exception (COW chunk 6; the first points at COW chunk 2)",
            })
    void loadAndCheckWordAnEntrysDamageAlike(int entry, String field, long value, String checkPrefix, String sentence)
            throws IOException {
        MemoryDevice cow = KernelFixtures.imageDevice("basic", "cow.img");
        long offset = 4096 + entry * 16L + (field.equals("new") ? 8 : 0);
        MemorySegment block = MemorySegment.ofArray(new byte[512]);
        block.copyFrom(cow.contents().asSlice(offset - offset % 512, 512));
        block.set(PersistentLayout.LE64, offset % 512, value);
        cow.write(offset - offset % 512, block);
        assertAlike(cow, sentence, (checkPrefix == null ? "" : checkPrefix + " ") + sentence);
    }

    /** An entry with two damages: the load names the first it checks (as before the walk was shared), check both. */
    @Test
    void anEntryWithTwoDamagesIsRefusedForTheFirstTheLoadChecks() throws IOException {
        MemoryDevice cow = KernelFixtures.imageDevice("basic", "cow.img");
        MemorySegment block = MemorySegment.ofArray(new byte[512]);
        block.copyFrom(cow.contents().asSlice(4096, 512));
        new AreaEntries(block).set(6, -1, 3); // an origin chunk negative as signed, and COW chunk 3 again
        cow.write(4096, block);
        String outOfRange = "exception 6 of area 0 (byte 4192) names origin chunk 18446744073709551615, out of range";
        try (PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
                ExceptionTable table = new ExceptionTable()) {
            CorruptStoreException e = assertThrows(CorruptStoreException.class, () -> store.load(table.loadingSink()));
            assertEquals(outOfRange, e.getMessage());
        }
        assertEquals(
                List.of(
                        outOfRange,
                        "exception 6 of area 0 (byte 4192) points at COW chunk 3, which an earlier"
                                + " exception uses too"),
                CowInspector.inspect(cow, 512, -1).problems().stream()
                        .map(CowInspector.Problem::message)
                        .toList());
    }

    @Test
    void loadAndCheckWordAMissingTerminatorAlike() throws IOException {
        // Header, a full area 0 and its 256 data chunks: area 1 would lie past the end.
        MemoryDevice cow = new MemoryDevice("cow", 258 * 4096L);
        cow.write(
                0,
                MemorySegment.ofArray(KernelFixtures.image("basic", "cow.img")).asSlice(0, 4096));
        MemorySegment area = MemorySegment.ofArray(new byte[4096]);
        AreaEntries entries = new AreaEntries(area);
        for (int i = 0; i < 256; i++) {
            entries.set(i, i, 2 + i);
        }
        cow.write(4096, area);
        String sentence =
                "area 1 (chunk 258) lies beyond the end of the COW (258 chunks): the exception list has no terminator";
        assertAlike(cow, sentence, sentence);
    }

    @Test
    void loadAndCheckWordACowTooSmallForItsHeaderChunkAlike() throws IOException {
        MemoryDevice cow = new MemoryDevice("tiny", 512);
        cow.write(
                0,
                MemorySegment.ofArray(KernelFixtures.image("basic", "cow.img")).asSlice(0, 512));
        String sentence = "the COW tiny (512 bytes) is too small for the header chunk with chunk size 8";
        assertAlike(cow, sentence, sentence);
    }

    @Test
    void staleEntriesAfterTheTerminatorLoadButCheckNamesThem() throws IOException {
        MemoryDevice cow = KernelFixtures.imageDevice("basic", "cow.img");
        MemorySegment block = MemorySegment.ofArray(new byte[512]);
        block.copyFrom(cow.contents().asSlice(4096, 512));
        new AreaEntries(block).set(20, 7, 99);
        cow.write(4096, block);
        try (PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
                ExceptionTable table = new ExceptionTable()) {
            store.load(table.loadingSink());
            assertEquals(11, table.size());
        }
        CowInspector.Report report = CowInspector.inspect(cow, 512, -1);
        assertEquals(
                List.of("exception 20 of area 0 (byte 4416) follows the terminator (exception 11) but is not zero:"
                        + " ignored by the kernel, but a torn or stale write"),
                report.problems().stream().map(CowInspector.Problem::message).toList());
        assertEquals(
                CowDamage.STALE_AFTER_TERMINATOR, report.problems().getFirst().kind());
    }

    private static void assertAlike(MemoryDevice cow, String loadMessage, String checkMessage) throws IOException {
        try (PersistentExceptionStore store = new PersistentExceptionStore(cow, new ChunkSize(8), false, 512);
                ExceptionTable table = new ExceptionTable()) {
            CorruptStoreException e = assertThrows(CorruptStoreException.class, () -> store.load(table.loadingSink()));
            assertEquals(loadMessage, e.getMessage(), "the table load");
        }
        CowInspector.Report report = CowInspector.inspect(cow, 512, -1);
        assertEquals(
                List.of(checkMessage),
                report.problems().stream().map(CowInspector.Problem::message).toList(),
                "cow check");
    }
}
