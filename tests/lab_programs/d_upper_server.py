# Server
import socket
sock_server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock_server.bind(('0.0.0.0', 9000))
sock_server.listen(2)
count = 0
while True:
  client_conn, client_addr = sock_server.accept()
  count += 1
  print(f'[{count}] - Connected by {client_addr}')
  while True:
    try:
      data = client_conn.recv(1024)
    except ConnectionResetError as e:
      print(f"from client error {client_addr}:{e}")
      client_conn.close()
      break
    if not data: break
    print(f"from client {client_addr}:{data.decode()}")
    client_conn.send(data.decode().upper().encode())
sock_server.close()
