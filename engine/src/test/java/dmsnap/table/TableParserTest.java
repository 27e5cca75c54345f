package dmsnap.table;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dmsnap.ffm.Errno;
import java.util.List;
import org.junit.jupiter.api.Test;

class TableParserTest {
    @Test
    void parsesAndPrintsDmsetupTables() throws TableLoadException {
        Table t = TableParser.parse("0 16384 snapshot /dev/vda /dev/vdb P 8\n");
        assertEquals(
                List.of(new TableLine(0, 16384, "snapshot", List.of("/dev/vda", "/dev/vdb", "P", "8"))), t.lines());
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
        assertEquals(
                "Gap in table",
                assertThrows(TableLoadException.class, () -> TableParser.parse("0 100 zero\n101 5 zero"))
                        .getMessage());
        assertEquals(
                "Gap in table",
                assertThrows(TableLoadException.class, () -> TableParser.parse("0 100 zero\n50 100 zero"))
                        .getMessage());
        assertEquals(
                "Gap in table",
                assertThrows(TableLoadException.class, () -> TableParser.parse("8 100 zero"))
                        .getMessage());
        TableLoadException zero = assertThrows(TableLoadException.class, () -> TableParser.parse("0 0 zero"));
        assertEquals("zero-length target", zero.getMessage());
        assertEquals("zero", zero.target());
        assertEquals(Errno.EINVAL, zero.errno());
        assertThrows(TableLoadException.class, () -> TableParser.parse(""));
        assertThrows(TableLoadException.class, () -> TableParser.parse("0 10"));
        assertThrows(TableLoadException.class, () -> TableParser.parse("0 -5 zero"));
        assertThrows(TableLoadException.class, () -> TableParser.parse("x 5 zero"));
    }

    /**
     * Found by TableFuzzTest (seed -4894682473222077922, case 307): a parse error echoed the line
     * with its carriage return (a second line on a terminal) and at any length.
     */
    @Test
    void parseErrorsShowTheLineOnOneLineAndCutShort() {
        assertEquals(
                "Invalid start '-2' in line: -2 580 zero /a\\x0db",
                assertThrows(TableLoadException.class, () -> TableParser.parse("-2 580 zero /a\rb"))
                        .getMessage());
        assertEquals(
                "Invalid format on line 1: 0\\x1b\\x0b5",
                assertThrows(TableLoadException.class, () -> TableParser.parse("0\u001b\u000b5"))
                        .getMessage());
        assertEquals(
                "Invalid start '0\\x1b' in line: 0\\x1b\\x0b\\u2028 5",
                assertThrows(TableLoadException.class, () -> TableParser.parse("0\u001b\u000b\u2028 5"))
                        .getMessage());
        String longWord = "9".repeat(100_000);
        String message = assertThrows(TableLoadException.class, () -> TableParser.parse("0 " + longWord + " zero"))
                .getMessage();
        assertTrue(message.startsWith("Invalid length '999") && message.length() < 600, message);
    }

    /**
     * Found by TableFuzzTest (seed -2395800684807486916, case 531): a table of 2^54 sectors
     * loaded, and its size in bytes overflowed a long. The kernel refuses a table past
     * LLONG_MAX >> 9 sectors in dm_table_add_target.
     */
    @Test
    void tablesPastTheKernelsLargestDeviceAreRefused() throws TableLoadException {
        assertEquals(
                18014398509481983L,
                TableParser.parse("0 18014398509481983 zero").lengthSectors());
        for (String table : new String[] {
            "0 18014398509481984 error",
            "0 999999999999999999 zero",
            "0 18014398509481982 zero\n18014398509481982 2 zero"
        }) {
            TableLoadException e = assertThrows(TableLoadException.class, () -> TableParser.parse(table), table);
            assertEquals("too large device", e.getMessage());
            assertEquals(null, e.target(), "a table-level error");
            assertEquals(Errno.EINVAL, e.errno());
        }
    }
}
