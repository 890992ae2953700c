# client
import socket
sock_client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
  sock_client.connect(('localhost', 9000))
  while True:
    msg = input('input your msg>>>:').strip()
    if not msg: continue
    elif msg == 'q': break
    sock_client.send(msg.encode())
    data = sock_client.recv(1024)
    print('Received ', data.decode())
  sock_client.close()
except TimeoutError as e:
  print(e)
