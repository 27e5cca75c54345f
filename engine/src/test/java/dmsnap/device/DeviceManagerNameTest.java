package dmsnap.device;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dmsnap.ffm.Errno;
import dmsnap.table.TableParser;
import dmsnap.target.TargetTypes;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Device names (and uuids) are text that can be saved and shown: valid Unicode, no control characters. */
class DeviceManagerNameTest {
    private final DeviceManager dm = new DeviceManager(TargetTypes.withBasicTargets(), new BackingDevices());

    @Test
    void namesThatAreNotValidUnicodeOrHoldControlCharactersAreRefused() throws Exception {
        List<List<String>> refused = List.of(
                List.of("a\uD800b", "a\\ud800b"), // a lone high surrogate
                List.of("\uDC00", "\\udc00"), // a lone low surrogate
                List.of("b\uDC00\uD800", "b\\udc00\\ud800"), // both, in the wrong order
                List.of("a\u0000b", "a\\u0000b"),
                List.of("a\nb", "a\\u000ab"),
                List.of("a\u007fb", "a\\u007fb"),
                List.of("a\u0085b", "a\\u0085b"));
        for (List<String> c : refused) {
            DmException e = assertThrows(
                    DmException.class, () -> dm.create(c.getFirst(), null, TableParser.parse("0 8 zero")), c.getLast());
            assertEquals(Errno.EINVAL, e.errno());
            assertEquals("Invalid device name '" + c.getLast() + "'", e.getMessage(), "shown escaped, on one line");
            assertFalse(
                    e.getMessage().chars().anyMatch(ch -> Character.isSurrogate((char) ch)),
                    "the message can be encoded");
        }
        assertEquals(List.of(), dm.list());
        MappedDevice ok = dm.create("smile-\uD83D\uDE00", null, TableParser.parse("0 8 zero"));
        assertEquals("smile-\uD83D\uDE00", ok.name(), "a surrogate pair is a valid character");
        DmException rename = assertThrows(DmException.class, () -> dm.rename("smile-\uD83D\uDE00", "x\uD800"));
        assertEquals("Invalid device name 'x\\ud800'", rename.getMessage());
        DmException uuid =
                assertThrows(DmException.class, () -> dm.create("u", "LVM-\uDFFF", TableParser.parse("0 8 zero")));
        assertEquals(Errno.EINVAL, uuid.errno());
        assertEquals("Invalid uuid 'LVM-\\udfff'", uuid.getMessage());
        assertEquals(
                List.of("smile-\uD83D\uDE00"),
                dm.list().stream().map(MappedDevice::name).toList());
    }
}
