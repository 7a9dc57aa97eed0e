// Runs PixelMed's DicomSRValidator over many files in one JVM (its main takes one file, and
// compiling its template stylesheet costs seconds per JVM). Prints "=== FILE <path>", the
// file's report (or "=== FAILED <path>: <exception>" when it cannot be validated) and
// "=== DONE <path>", so a caller can tell a clean report from a cut-off one.
//
// Speed: PixelMed's URIResolver hands the XSLT its context-group table (a 664 kB XML
// resource) as a stream without a system id, so XSLTC cannot recognise it as already loaded
// and parses and indexes it again at every code-meaning lookup (over 90 % of a file's time
// here). Naming the resolved documents lets XSLTC load it once per file. The checks are
// unchanged (tests/results/test_pixelmed_batch.py compares the reports with PixelMed's own
// main). tests/validators.py compiles this once per machine, keyed by this source's hash.
import com.pixelmed.validate.DicomSRValidator;
import java.lang.reflect.Field;
import javax.xml.transform.Source;
import javax.xml.transform.Transformer;
import javax.xml.transform.TransformerException;
import javax.xml.transform.URIResolver;

public class BatchSRValidator {
    /** Gives each document PixelMed's resolver returns the name it was asked by. */
    static final class NamingResolver implements URIResolver {
        private final URIResolver inner;

        NamingResolver(URIResolver inner) {
            this.inner = inner;
        }

        @Override
        public Source resolve(String href, String base) throws TransformerException {
            Source source = inner.resolve(href, base);
            if (source != null && source.getSystemId() == null && (base == null || base.isEmpty())) {
                source.setSystemId(href);
            }
            return source;
        }
    }

    static void nameDocuments(DicomSRValidator validator) {
        for (String name : new String[] {"transformerPass1", "transformerPass2"}) {
            try {
                Field field = DicomSRValidator.class.getDeclaredField(name);
                field.setAccessible(true);
                Transformer transformer = (Transformer) field.get(validator);
                transformer.setURIResolver(new NamingResolver(transformer.getURIResolver()));
            } catch (ReflectiveOperationException | RuntimeException e) {
                System.err.println("BatchSRValidator: running unpatched (slow), cannot wrap " + name + ": " + e);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        DicomSRValidator validator = new DicomSRValidator();
        nameDocuments(validator);
        for (String path : args) {
            String report;
            try {
                report = validator.validate(path);
                report = report.endsWith("\n") ? report : report + "\n";
            } catch (Exception e) {
                report = "=== FAILED " + path + ": " + e + "\n";
            }
            System.out.print("=== FILE " + path + "\n" + report + "=== DONE " + path + "\n");
            System.out.flush();
        }
    }
}
