package dmsnap.table;

import java.util.List;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class TableParserTest {
    @Test
    void parsesAndPrintsDmsetupTables() throws TableLoadException {
        Table t = TableParser.parse("0 16384 snapshot /dev/vda /dev/vdb P 8\n");
        assertEquals(List.of(new TableLine(0, 16384, "snapshot", List.of("/dev/vda", "/dev/vdb", "P", "8"))), t.lines());
        assertEquals(16384, t.lengthSectors());
        assertEquals("0 16384 snapshot /dev/vda /dev/vdb P 8\n", t.toString());
    }

    @Test
    void multiLineTablesWithCommentsAndExtraSpace() throws TableLoadException {
        Table t = TableParser.parse("# two halves\n0 100  linear /a 0\n\n  100 50 zero\n");
        assertEquals(2, t.lines().size());
        assertEquals(150, t.lengthSectors());
        assertEquals(List.of(), t.lines().get(1).args());
    }

    @Test
    void gapsOverlapsAndEmptyTargetsAreRefused() {
        assertEquals("Gap in table", assertThrows(TableLoadException.class,
                () -> TableParser.parse("0 100 zero\n101 5 zero")).getMessage());
        assertEquals("Gap in table", assertThrows(TableLoadException.class,
                () -> TableParser.parse("0 100 zero\n50 100 zero")).getMessage());
        assertEquals("Gap in table", assertThrows(TableLoadException.class,
                () -> TableParser.parse("8 100 zero")).getMessage());
        TableLoadException zero = assertThrows(TableLoadException.class, () -> TableParser.parse("0 0 zero"));
        assertEquals("zero-length target", zero.getMessage());
        assertEquals("dm-0: zero: zero-length target (-EINVAL)", zero.kernelLogLine("dm-0"));
        assertThrows(TableLoadException.class, () -> TableParser.parse(""));
        assertThrows(TableLoadException.class, () -> TableParser.parse("0 10"));
        assertThrows(TableLoadException.class, () -> TableParser.parse("0 -5 zero"));
        assertThrows(TableLoadException.class, () -> TableParser.parse("x 5 zero"));
    }
}
