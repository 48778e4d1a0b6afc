"""DataProvider implementations (core.dataprovider.DataProvider): samples of any Dataset,
files in a folder (.npy, EEMBC .bin, PNG/JPEG), frames from a TCP stream."""
