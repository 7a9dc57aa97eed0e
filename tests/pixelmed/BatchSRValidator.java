// Runs PixelMed's DicomSRValidator over many files in one JVM (its main takes one file and
// loading the compiled XSLT costs most of a run). Prints "=== FILE <path>" before each file's
// report and "=== FAILED <path>: <exception>" when a file cannot be validated.
// Run with the JDK's source launcher: java -cp pixelmed.jar BatchSRValidator.java FILE...
import com.pixelmed.validate.DicomSRValidator;

public class BatchSRValidator {
    public static void main(String[] args) throws Exception {
        DicomSRValidator validator = new DicomSRValidator();
        for (String path : args) {
            System.out.println("=== FILE " + path);
            try {
                System.out.print(validator.validate(path));
            } catch (Exception e) {
                System.out.println("=== FAILED " + path + ": " + e);
            }
            System.out.flush();
        }
    }
}
