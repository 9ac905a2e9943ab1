set terminal pngcairo size 1500,1300 font 'sans,10'
set output '/work/bench-612-wake/bench.png'
set style line 1 lw 2 pt 5 lc rgb '#555555'
set style line 2 lw 2 pt 6 lc rgb '#d62728'
set style line 3 lw 2 pt 7 lc rgb '#1f77b4'
set style line 4 lw 2 pt 8 lc rgb '#ff7f0e'
set style line 5 lw 2 pt 9 lc rgb '#2ca02c'
set style line 6 lw 2 pt 10 lc rgb '#9467bd' dt 2
set style line 7 lw 2 pt 11 lc rgb '#8c564b' dt 2
set key top left font ',8'
set grid ytics
set yrange [0:*]
set multiplot layout 3,2
set title 'Throughput, 1 stream'
set ylabel 'Gbit/s'
set xtics ('64 KiB' 0, '1 MiB' 1)
set xrange [-0.5:1.5]
plot '/work/bench-612-wake/bench.dat' index 0 using 1:2:3:4 with yerrorlines ls 1 title '1 TCP', \
  '/work/bench-612-wake/bench.dat' index 1 using 1:2:3:4 with yerrorlines ls 2 title '2 shim (vsock)', \
  '/work/bench-612-wake/bench.dat' index 2 using 1:2:3:4 with yerrorlines ls 3 title '3 native vsock', \
  '/work/bench-612-wake/bench.dat' index 3 using 1:2:3:4 with yerrorlines ls 4 title '4 socat pair', \
  '/work/bench-612-wake/bench.dat' index 4 using 1:2:3:4 with yerrorlines ls 5 title '5 shim, not co-resident', \
  '/work/bench-612-wake/bench.dat' index 5 using 1:2:3:4 with yerrorlines ls 6 title '6 relay, copies', \
  '/work/bench-612-wake/bench.dat' index 6 using 1:2:3:4 with yerrorlines ls 7 title '7 relay, sockmap', \
  '/work/bench-612-wake/bench.dat' index 7 using 1:2:3:4 with yerrorlines ls 8 title '8 guest-wide (bridge)'
set title 'Throughput, 4 streams'
set ylabel 'Gbit/s'
set xtics ('64 KiB' 0, '1 MiB' 1)
set xrange [-0.5:1.5]
plot '/work/bench-612-wake/bench.dat' index 8 using 1:2:3:4 with yerrorlines ls 1 title '1 TCP', \
  '/work/bench-612-wake/bench.dat' index 9 using 1:2:3:4 with yerrorlines ls 2 title '2 shim (vsock)', \
  '/work/bench-612-wake/bench.dat' index 10 using 1:2:3:4 with yerrorlines ls 3 title '3 native vsock', \
  '/work/bench-612-wake/bench.dat' index 11 using 1:2:3:4 with yerrorlines ls 4 title '4 socat pair', \
  '/work/bench-612-wake/bench.dat' index 12 using 1:2:3:4 with yerrorlines ls 5 title '5 shim, not co-resident', \
  '/work/bench-612-wake/bench.dat' index 13 using 1:2:3:4 with yerrorlines ls 6 title '6 relay, copies', \
  '/work/bench-612-wake/bench.dat' index 14 using 1:2:3:4 with yerrorlines ls 7 title '7 relay, sockmap', \
  '/work/bench-612-wake/bench.dat' index 15 using 1:2:3:4 with yerrorlines ls 8 title '8 guest-wide (bridge)'
set title 'Round-trip latency, p50 (lower is better)'
set ylabel 'µs'
set xtics ('1 B' 0)
set xrange [-0.5:0.5]
plot '/work/bench-612-wake/bench.dat' index 16 using 1:2:3:4 with yerrorlines ls 1 title '1 TCP', \
  '/work/bench-612-wake/bench.dat' index 17 using 1:2:3:4 with yerrorlines ls 2 title '2 shim (vsock)', \
  '/work/bench-612-wake/bench.dat' index 18 using 1:2:3:4 with yerrorlines ls 3 title '3 native vsock', \
  '/work/bench-612-wake/bench.dat' index 19 using 1:2:3:4 with yerrorlines ls 4 title '4 socat pair', \
  '/work/bench-612-wake/bench.dat' index 20 using 1:2:3:4 with yerrorlines ls 5 title '5 shim, not co-resident', \
  '/work/bench-612-wake/bench.dat' index 21 using 1:2:3:4 with yerrorlines ls 6 title '6 relay, copies', \
  '/work/bench-612-wake/bench.dat' index 22 using 1:2:3:4 with yerrorlines ls 7 title '7 relay, sockmap', \
  '/work/bench-612-wake/bench.dat' index 23 using 1:2:3:4 with yerrorlines ls 8 title '8 guest-wide (bridge)'
set title 'Round-trip latency, p99 (lower is better)'
set ylabel 'µs'
set xtics ('1 B' 0)
set xrange [-0.5:0.5]
plot '/work/bench-612-wake/bench.dat' index 24 using 1:2:3:4 with yerrorlines ls 1 title '1 TCP', \
  '/work/bench-612-wake/bench.dat' index 25 using 1:2:3:4 with yerrorlines ls 2 title '2 shim (vsock)', \
  '/work/bench-612-wake/bench.dat' index 26 using 1:2:3:4 with yerrorlines ls 3 title '3 native vsock', \
  '/work/bench-612-wake/bench.dat' index 27 using 1:2:3:4 with yerrorlines ls 4 title '4 socat pair', \
  '/work/bench-612-wake/bench.dat' index 28 using 1:2:3:4 with yerrorlines ls 5 title '5 shim, not co-resident', \
  '/work/bench-612-wake/bench.dat' index 29 using 1:2:3:4 with yerrorlines ls 6 title '6 relay, copies', \
  '/work/bench-612-wake/bench.dat' index 30 using 1:2:3:4 with yerrorlines ls 7 title '7 relay, sockmap', \
  '/work/bench-612-wake/bench.dat' index 31 using 1:2:3:4 with yerrorlines ls 8 title '8 guest-wide (bridge)'
set title 'Connection rate: connect, 1 B there and back, close'
set ylabel 'connections/s'
set xtics ('all paths' 0)
set xrange [-0.5:0.5]
plot '/work/bench-612-wake/bench.dat' index 32 using 1:2:3:4 with yerrorlines ls 1 title '1 TCP', \
  '/work/bench-612-wake/bench.dat' index 33 using 1:2:3:4 with yerrorlines ls 2 title '2 shim (vsock)', \
  '/work/bench-612-wake/bench.dat' index 34 using 1:2:3:4 with yerrorlines ls 3 title '3 native vsock', \
  '/work/bench-612-wake/bench.dat' index 35 using 1:2:3:4 with yerrorlines ls 4 title '4 socat pair', \
  '/work/bench-612-wake/bench.dat' index 36 using 1:2:3:4 with yerrorlines ls 5 title '5 shim, not co-resident', \
  '/work/bench-612-wake/bench.dat' index 37 using 1:2:3:4 with yerrorlines ls 6 title '6 relay, copies', \
  '/work/bench-612-wake/bench.dat' index 38 using 1:2:3:4 with yerrorlines ls 7 title '7 relay, sockmap', \
  '/work/bench-612-wake/bench.dat' index 39 using 1:2:3:4 with yerrorlines ls 8 title '8 guest-wide (bridge)'
set title 'Many connections at once (64 KiB writes)'
set ylabel 'Gbit/s'
set xtics ('1' 0)
set xrange [-0.5:0.5]
plot '/work/bench-612-wake/bench.dat' index 40 using 1:2:3:4 with yerrorlines ls 1 title '1 TCP', \
  '/work/bench-612-wake/bench.dat' index 41 using 1:2:3:4 with yerrorlines ls 2 title '2 shim (vsock)'
unset multiplot
