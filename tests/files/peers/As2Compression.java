// Bouncy Castle's S/MIME (bcmail, Debian's libbcmail-java) as the independent AS2 peer of
// tests/files/test_as2_compression.py: RFC 3274 compressed data, written and read by
// SMIMECompressedGenerator and SMIMECompressed with their zlib compressor and expander.
//
//   java -cp BC_JARS As2Compression.java compress < entity > compressed-entity
//   java -cp BC_JARS As2Compression.java expand < compressed-entity > entity
//
// Java runs this source file directly (JEP 330); nothing is built or kept.

import javax.mail.internet.MimeBodyPart;
import org.bouncycastle.cms.jcajce.ZlibCompressor;
import org.bouncycastle.cms.jcajce.ZlibExpanderProvider;
import org.bouncycastle.mail.smime.SMIMECompressed;
import org.bouncycastle.mail.smime.SMIMECompressedGenerator;

public class As2Compression {
    public static void main(String[] args) throws Exception {
        MimeBodyPart part = new MimeBodyPart(System.in);
        if (args.length == 1 && args[0].equals("compress")) {
            new SMIMECompressedGenerator().generate(part, new ZlibCompressor()).writeTo(System.out);
        } else if (args.length == 1 && args[0].equals("expand")) {
            System.out.write(new SMIMECompressed(part).getContent(new ZlibExpanderProvider()));
        } else {
            System.err.println("usage: As2Compression compress|expand");
            System.exit(2);
        }
        System.out.flush();
    }
}
